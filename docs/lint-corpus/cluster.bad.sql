-- lint corpus: breaks cluster
CLUSTER users USING users_pkey;
