-- The planner's estimate of `q=` (an ILIKE '%term%' on the search expression of
-- jobs_search_trgm, 0004) comes from that expression's histogram only when it has at
-- least 100 entries besides its two ends; at the default statistics target (100
-- bounds) it has 99, and Postgres falls back to a fixed guess near 1 % of the jobs
-- whatever the term. For a rare term over every tenant that guess made it walk the
-- whole list in order (jobs_created) filtering each row: 5.4 s at 10,000,000 jobs
-- (bench/reads_at_scale.py), against ~50 ms through the trigram index. With 1,000
-- bounds a term no sampled job holds is estimated at the floor (0.01 %) and read
-- through the trigram index, while a common one (a few % of the jobs) still walks the
-- list, which fills a page in a few hundred rows (~20 ms). ANALYZE then samples
-- 300,000 rows instead of 30,000 (~5 s at 10,000,000 jobs, in autovacuum's worker).
ALTER INDEX jobs_search_trgm ALTER COLUMN 1 SET STATISTICS 1000;
ANALYZE jobs;
