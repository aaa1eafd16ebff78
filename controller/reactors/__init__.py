"""reactors"""
