"""A tiny calculator with a bug for keel's sample task."""


def add(a, b):
    return a - b


def multiply(a, b):
    return a * b
