-- Glue table over rewind's capture objects (s3://acme-rewind/capture/table=<t>/dt=YYYY-MM-DD/hour=HH/*.parquet).
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

-- The key set: one row per item, as `rewind query` prints it.
WITH events AS (
  SELECT source_table, keys, tenant, action, event_time,
         row_number() OVER (PARTITION BY event_id ORDER BY "$path") AS copy
  FROM rewind.changes
  WHERE (dt > '2026-11-19' OR (dt = '2026-11-19' AND hour >= '22'))
    AND (dt < '2026-11-21' OR (dt = '2026-11-21' AND hour <= '03'))
    AND event_time >= TIMESTAMP '2026-11-19 22:15:00.000000'
    AND event_time < TIMESTAMP '2026-11-21 03:00:00.500000'
    AND decode_error IS NULL
    AND "table" IN ('orders')
    AND tenant IN ('acme', 'globex')
    AND action IN ('MODIFY', 'REMOVE')
    AND NOT ttl_expiry
    AND starts_with(coalesce(json_extract_scalar(keys, '$["pk"]["S"]'), json_extract_scalar(keys, '$["pk"]["N"]')), 'TENANT#acme')
    AND (contains(changed_attributes, 'status') OR contains(changed_attributes, 'amount'))
    AND coalesce(json_extract_scalar(new_image, '$["deployVersion"]["S"]'), json_extract_scalar(new_image, '$["deployVersion"]["N"]'), json_extract_scalar(new_image, '$["deployVersion"]["BOOL"]'), json_extract_scalar(new_image, '$["deployVersion"]["B"]')) = 'v42'
    AND coalesce(json_extract_scalar(old_image, '$["status"]["S"]'), json_extract_scalar(old_image, '$["status"]["N"]'), json_extract_scalar(old_image, '$["status"]["BOOL"]'), json_extract_scalar(old_image, '$["status"]["B"]')) IS DISTINCT FROM 'it''s'
)
SELECT source_table AS "table", keys AS "key", max(tenant) AS tenant,
       min(event_time) AS first, max(event_time) AS last, count(*) AS count,
       array_sort(array_agg(DISTINCT action)) AS actions
FROM events
WHERE copy = 1
GROUP BY source_table, keys
ORDER BY source_table, keys;
