"""Foundation: optional-dependency loading, small shared checks, console output. Imports only errors."""
