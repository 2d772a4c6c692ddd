-- lint corpus: breaks vacuum-full
VACUUM FULL users;
