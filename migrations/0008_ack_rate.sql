-- The global acknowledgement rate limit counts the acks queued in the last hour.
CREATE INDEX outbox_acks ON outbox(created_at) WHERE purpose GLOB 'ack:*';
