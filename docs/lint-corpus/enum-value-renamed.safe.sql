-- lint corpus: safe twin of enum-value-renamed
ALTER TYPE mood ADD VALUE 'unhappy';
