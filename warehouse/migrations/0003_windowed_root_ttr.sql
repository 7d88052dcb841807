-- Guiraud's index (root TTR) over each window's words, WindowedMetrics.pooled_root_ttr. Nullable: windows
-- ingested before it have none.
ALTER TABLE raw_windowed_metrics ADD COLUMN IF NOT EXISTS pooled_root_ttr Nullable(Float32) AFTER pooled_mtld;
