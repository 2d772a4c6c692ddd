-- lint corpus: safe twin of drop-column
SELECT migrate.drop_column('users', 'legacy_flag');
