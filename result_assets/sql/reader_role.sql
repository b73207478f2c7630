-- A read-only role for readers of the catalog: it can SELECT the catalog tables and
-- nothing else (no INSERT, UPDATE, DELETE, TRUNCATE, no new tables).
--
--   psql "$DATABASE_URL" -v reader=result_reader -v reader_password="$READER_PASSWORD" \
--        -f result_assets/sql/reader_role.sql
--
-- Run it as the catalog's owner (the role the migration connects with), after the first
-- migration created the tables. Safe to run again: an existing role keeps its password.
\set ON_ERROR_STOP on

SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'reader') AS reader_missing \gset
\if :reader_missing
CREATE ROLE :"reader" LOGIN PASSWORD :'reader_password';
\endif

GRANT CONNECT ON DATABASE :"DBNAME" TO :"reader";
GRANT USAGE ON SCHEMA public TO :"reader";
GRANT SELECT ON tasks, task_symbols, task_sources, tasks_history, hot_rows, task_failures, served_files, result_assets_schema TO :"reader";
-- Belt and braces: every transaction of this role is read-only, even if a grant slips in later.
ALTER ROLE :"reader" SET default_transaction_read_only = on;
