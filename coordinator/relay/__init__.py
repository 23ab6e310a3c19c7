"""The relay: end users reach the services on volunteer machines through worker tunnels."""
