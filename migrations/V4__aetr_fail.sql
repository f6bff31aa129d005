-- Fails the statement that calls it, with `message`. A statement that finds its own rows wrong
-- (a node write that matched fewer nodes than it was given) fails with it, instead of leaving
-- the check to the server after the answer: the server sends a transaction's COMMIT with its
-- writes, so only an error inside the transaction can still roll it back.
CREATE FUNCTION aetr_fail(message text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', message;
END
$$;
