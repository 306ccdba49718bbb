"""canary.cli.main"""
