"""Records -> tables, summaries and reports. Imports no ML framework."""
