"""Prints `Tokenizer.from_file(TOKENIZER_JSON).encode(text).ids` as JSON (special
tokens added, like `AutoTokenizer.encode`). usage: encode_ids.py TOKENIZER_JSON TEXT_FILE"""
import json
import sys

from tokenizers import Tokenizer

text = open(sys.argv[2], encoding="utf-8").read()
print(json.dumps(Tokenizer.from_file(sys.argv[1]).encode(text).ids))
