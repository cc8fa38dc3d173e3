"""Real devices: cells measured on the device a remote profile names (ssh.py), not on this host."""
