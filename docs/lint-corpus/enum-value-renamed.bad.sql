-- lint corpus: breaks enum-value-renamed
ALTER TYPE mood RENAME VALUE 'sad' TO 'unhappy';
