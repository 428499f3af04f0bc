"""Asyncio client for Vortext, the SMS gateway of cegedim.cloud."""
