-- `mailbot inbound --ignored --since`: the ignored mail of a period, in arrival order.
CREATE INDEX inbound_ignored ON inbound(received_at) WHERE status = 'ignored';
