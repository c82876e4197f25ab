"""mailbot: an email-driven triage bot for security@ and support@ inboxes."""

__version__ = "0.1.0"
