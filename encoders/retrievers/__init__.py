"""Retrievers: BM25, DPR and ColBERT behind one protocol (:mod:`encoders.retrievers.protocol`)."""
