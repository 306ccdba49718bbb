"""canary.demo.run"""
