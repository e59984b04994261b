"""Small stateful stand-ins for vendor APIs that cannot run here, speaking their documented formats."""
