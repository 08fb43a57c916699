-- Indexes for the audience queries: GIN on the tag array, btree on keywords, numbers and dates,
-- and text_pattern_ops btrees so that `region LIKE '3301%'` (a code prefix) is an index range.
SET maintenance_work_mem = '1GB';
ALTER TABLE profiles ADD PRIMARY KEY (id);
CREATE INDEX profiles_tags ON profiles USING gin (tags);
CREATE INDEX profiles_kind ON profiles (kind);
CREATE INDEX profiles_scale ON profiles (scale);
CREATE INDEX profiles_region ON profiles (region text_pattern_ops);
CREATE INDEX profiles_industry ON profiles (industry text_pattern_ops);
CREATE INDEX profiles_employees ON profiles (employees);
CREATE INDEX profiles_registered_capital ON profiles (registered_capital);
CREATE INDEX profiles_revenue ON profiles (revenue);
CREATE INDEX profiles_birth_date ON profiles (birth_date);
CREATE INDEX profiles_founded ON profiles (founded);
VACUUM (ANALYZE) profiles;
