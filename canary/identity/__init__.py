"""canary.identity.generator"""
