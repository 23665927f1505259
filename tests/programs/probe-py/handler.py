"""componentize-py finds the class of an exported resource in a module named
after its interface: ``Aggregate`` of interface ``handler`` is here."""

from app import Aggregate

__all__ = ["Aggregate"]
