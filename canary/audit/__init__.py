"""canary.audit.report"""
