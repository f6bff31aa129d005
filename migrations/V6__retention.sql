-- Deleting old runs (AETR_RETENTION_DAYS): the oldest finished runs, found without a scan.
CREATE INDEX runs_finished ON runs (completed_at)
    WHERE state IN ('Complete', 'Error', 'Cancelled');
