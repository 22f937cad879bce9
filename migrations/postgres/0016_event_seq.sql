-- The fleet's event ids (PostgreSQL with several instances): one counter row, moved in
-- the transaction that sends the events (NOTIFY), so that ids follow commit order and
-- every instance's stream gives an event the same id. Runtime state, never copied.
CREATE TABLE event_seq (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    n   BIGINT NOT NULL
);
INSERT INTO event_seq (one, n) VALUES (1, 0);
