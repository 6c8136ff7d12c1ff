"""Reports out of the read models: the split as a table and CSV (KoA-VV workbooks follow)."""
