"""Connectors: the document model, the connector contract, and the built-in connectors."""

from .base import ConfigPath, Connector, SourceConfig, StaticACLConfig, parse_duration
from .model import ACL, Checkpoint, Deletion, Document, Item, Progress, Skipped, principals_for

__all__ = [
    "ACL", "Checkpoint", "ConfigPath", "Connector", "Deletion", "Document", "Item", "Progress", "Skipped",
    "SourceConfig", "StaticACLConfig", "parse_duration", "principals_for",
]
