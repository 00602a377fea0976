-- An approval's deliveries are read per message (GET /api/v1/approvals/{id}/deliveries).
CREATE INDEX deliveries_message ON deliveries (message_id, id);
