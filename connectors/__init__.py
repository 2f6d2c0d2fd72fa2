"""Connectors: the document model, the connector contract, and the built-in connectors.

The plumbing every SaaS connector shares (retry, rate limits, paging, checkpoints, renewal, the
Graph and Google clients) is the kit, `inlet.connectors.kit`; the conformance suite every connector
passes, built-in or plug-in, is `inlet.connectors.testing`.
"""

from .base import (
    ConfigPath,
    Connector,
    FolderConfig,
    FolderConnector,
    SourceConfig,
    StaticACLConfig,
    TypedConfig,
    parse_duration,
)
from .model import ACL, AclUpdate, Checkpoint, Deletion, Document, Item, Progress, Skipped, principals_for

__all__ = [
    "ACL",
    "AclUpdate",
    "Checkpoint",
    "ConfigPath",
    "Connector",
    "Deletion",
    "Document",
    "FolderConfig",
    "FolderConnector",
    "Item",
    "Progress",
    "Skipped",
    "SourceConfig",
    "StaticACLConfig",
    "TypedConfig",
    "parse_duration",
    "principals_for",
]
