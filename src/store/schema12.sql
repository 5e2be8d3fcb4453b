-- Version 12. Each look the daemon took at a CRM file it syncs ([clients] sync_file,
-- customers_file): when, which file, what came of it, the counts or the error. Looks
-- in a row with the same failure (a file missing for hours is looked for at every pass)
-- are one row, with the first and the latest look and how many there were. Failed
-- looks are also counted in meta 'sync_failures_total', which outlives pruned rows.
CREATE TABLE syncs (
    id               INTEGER PRIMARY KEY,
    file             TEXT NOT NULL,
    first_at         TEXT NOT NULL,
    at               TEXT NOT NULL,
    looks            INTEGER NOT NULL DEFAULT 1,
    outcome          TEXT NOT NULL,             -- imported | refused | missing | unreadable
    added            INTEGER NOT NULL DEFAULT 0,
    updated          INTEGER NOT NULL DEFAULT 0,
    unchanged        INTEGER NOT NULL DEFAULT 0,
    bad_rows         INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    last_imported_at TEXT                       -- the latest import of this file, this one or earlier
);
CREATE INDEX syncs_by_file ON syncs(file, id);

-- The one look kept so far (meta 'last_sync', JSON) becomes the first row.
INSERT INTO syncs (file, first_at, at, outcome, added, updated, unchanged, bad_rows, error, last_imported_at)
SELECT json_extract(v, '$.file'),
       strftime('%Y-%m-%dT%H:%M:%f000Z', json_extract(v, '$.at')),
       strftime('%Y-%m-%dT%H:%M:%f000Z', json_extract(v, '$.at')),
       json_extract(v, '$.outcome'),
       json_extract(v, '$.added'), json_extract(v, '$.updated'),
       json_extract(v, '$.unchanged'), json_extract(v, '$.bad_rows'),
       json_extract(v, '$.error'),
       strftime('%Y-%m-%dT%H:%M:%f000Z', json_extract(v, '$.last_imported_at'))
FROM (SELECT CAST(value AS TEXT) AS v FROM meta WHERE key = 'last_sync')
WHERE json_valid(v);
INSERT INTO meta (key, value)
SELECT 'sync_failures_total', COUNT(*) FROM syncs WHERE outcome <> 'imported';
DELETE FROM meta WHERE key = 'last_sync';
