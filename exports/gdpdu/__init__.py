"""Data files of the auditors' export: the DTD of the GDPdU description standard (gdpdu-01-09-2004.dtd).

The code that writes the export is exports.audit_export; this package only ships the DTD with it.
"""
