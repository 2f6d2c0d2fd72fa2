"""The PostgreSQL backend: catalog, BM25, state, leases, event status and the embedding record in
one database shared by every host (`[index].database_url`)."""
