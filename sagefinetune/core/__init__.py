"""Foundation: optional-dependency loading, small shared checks, what predict takes (``inputs``), console output.
Imports only errors."""
