-- Glue table over rewind's capture objects (s3://acme-rewind/capture/table=<t>/dt=YYYY-MM-DD/hour=HH/*.parquet).
-- rewind query --engine athena creates it through the Glue API; this DDL is the same table.
-- event_time is Parquet TIMESTAMP(MICROS, UTC); Athena reads it at millisecond precision.
-- sequence_number is a decimal string: order with CAST(sequence_number AS DECIMAL(38,0)).
-- keys, old_image and new_image are DynamoDB JSON; keys is canonical (attributes sorted, numbers normalized).
CREATE DATABASE IF NOT EXISTS rewind;

CREATE EXTERNAL TABLE IF NOT EXISTS rewind.changes (
  `event_id` string,
  `source_table` string,
  `region` string,
  `tenant` string,
  `action` string,
  `ttl_expiry` boolean,
  `event_time` timestamp,
  `sequence_number` string,
  `shard_id` string,
  `stream_view_type` string,
  `keys` string,
  `old_image` string,
  `new_image` string,
  `changed_attributes` array<string>,
  `size_bytes` bigint,
  `decode_error` string,
  `raw_record` string
)
PARTITIONED BY (`table` string, `dt` string, `hour` string)
STORED AS PARQUET
LOCATION 's3://acme-rewind/capture/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.table.type' = 'enum',
  'projection.table.values' = 'orders,users',
  'projection.dt.type' = 'date',
  'projection.dt.format' = 'yyyy-MM-dd',
  'projection.dt.range' = '2026-11-01,NOW',
  'projection.dt.interval' = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'storage.location.template' = 's3://acme-rewind/capture/table=${table}/dt=${dt}/hour=${hour}/'
);

-- The key set: one row per item; rewind sorts the rows by table and key.
WITH events AS (
  SELECT source_table, keys, tenant, action, event_time,
         row_number() OVER (PARTITION BY event_id ORDER BY sequence_number) AS copy
  FROM rewind.changes
  WHERE (dt > ? OR (dt = ? AND hour >= ?))
    AND (dt < ? OR (dt = ? AND hour <= ?))
    AND event_time >= CAST(? AS timestamp)
    AND event_time < CAST(? AS timestamp)
    AND coalesce(decode_error, '') = ''
    AND "table" IN (?)
    AND tenant IN (?, ?)
    AND action IN (?, ?)
    AND NOT coalesce(ttl_expiry, false)
    AND starts_with(coalesce(json_extract_scalar(keys, ?), json_extract_scalar(keys, ?)), ?)
    AND (contains(changed_attributes, ?) OR contains(changed_attributes, ?))
    AND coalesce(json_extract_scalar(new_image, ?) = ? OR json_extract_scalar(new_image, ?) = ? OR json_extract_scalar(new_image, ?) = ? OR json_extract_scalar(new_image, ?) = ?, false)
    AND NOT coalesce(json_extract_scalar(old_image, ?) = ? OR json_extract_scalar(old_image, ?) = ? OR json_extract_scalar(old_image, ?) = ? OR json_extract_scalar(old_image, ?) = ?, false)
)
SELECT source_table AS "table", keys AS "key", coalesce(max(nullif(tenant, '')), '') AS tenant,
       CAST(min(event_time) AS varchar) AS "first", CAST(max(event_time) AS varchar) AS "last",
       count(*) AS "count", count_if(action = 'INSERT') AS inserts,
       count_if(action = 'MODIFY') AS modifies, count_if(action = 'REMOVE') AS removes
FROM events
WHERE copy = 1
GROUP BY source_table, keys;
-- Execution parameters, in the order of the ? placeholders:
--   1: '2026-11-19'
--   2: '2026-11-19'
--   3: '22'
--   4: '2026-11-21'
--   5: '2026-11-21'
--   6: '03'
--   7: '2026-11-19 22:15:00.000000'
--   8: '2026-11-21 03:00:00.500000'
--   9: 'orders'
--   10: 'acme'
--   11: 'globex'
--   12: 'MODIFY'
--   13: 'REMOVE'
--   14: '$["pk"]["S"]'
--   15: '$["pk"]["N"]'
--   16: 'TENANT#acme'
--   17: 'status'
--   18: 'amount'
--   19: '$["deployVersion"]["S"]'
--   20: 'v42'
--   21: '$["deployVersion"]["B"]'
--   22: 'v42'
--   23: '$["deployVersion"]["BOOL"]'
--   24: 'v42'
--   25: '$["deployVersion"]["N"]'
--   26: 'v42'
--   27: '$["status"]["S"]'
--   28: 'it''s'
--   29: '$["status"]["B"]'
--   30: 'it''s'
--   31: '$["status"]["BOOL"]'
--   32: 'it''s'
--   33: '$["status"]["N"]'
--   34: 'it''s'
