"""Readers for OpenVPN status output, the management interface, and the rates derived from them."""
