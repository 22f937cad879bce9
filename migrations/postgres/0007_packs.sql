-- Store format v2: chunks live in pack objects (`packs/<2 hex>/<64 hex>`). A chunk row
-- names its pack and its offset there (its length is stored_size); NULL: the chunk is
-- an object of its own (format v1, `chunks/<2 hex>/<hash>`).
ALTER TABLE chunks ADD COLUMN pack BYTEA;
ALTER TABLE chunks ADD COLUMN pack_offset BIGINT;
CREATE INDEX chunks_pack ON chunks (pack);
