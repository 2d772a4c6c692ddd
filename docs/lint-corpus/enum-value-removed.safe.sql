-- lint corpus: safe twin of enum-value-removed
ALTER TYPE mood ADD VALUE IF NOT EXISTS 'neutral' BEFORE 'sad';
