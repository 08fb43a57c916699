-- PostgreSQL side of the audience benchmark: one row per profile, the same attributes zhida
-- indexes. Loaded with COPY by `zd_bench_baseline pg-load`; indexes come after the load
-- (pg_index.sql), which is how a bulk load is done in practice.
DROP TABLE IF EXISTS profiles;
CREATE TABLE profiles (
    id                 text NOT NULL,
    kind               text NOT NULL,
    region             text NOT NULL,
    industry           text,
    employees          integer,
    registered_capital bigint,
    revenue            bigint,
    birth_date         date,
    founded            date,
    scale              text,
    tags               text[] NOT NULL DEFAULT '{}'
);
