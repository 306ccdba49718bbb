"""Helpers shared by the tests: fixtures, fake servers, site builders (imported as ``support.NAME``)."""
