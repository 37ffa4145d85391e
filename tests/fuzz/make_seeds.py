#!/usr/bin/env python3
# Writes the seed corpora of the libFuzzer harnesses (tests/fuzz/corpus/*):
# small valid inputs each harness starts mutating from, so the fuzzer gets
# past the first checks at once. The files are committed; this script says
# how they were made and remakes them (python3 tests/fuzz/make_seeds.py).
# The GGUF and protobuf bytes are written by hand here (no library), in the
# layouts of engine/gguf/gguf.c and proto/relais.proto. The GGUF seeds have no
# .gguf suffix: the repository ignores *.gguf outside tests/data.
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(harness, name, data):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- GGUF v3 ----
def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, t, val):
    return gstr(key) + struct.pack("<I", t) + val


def arr_str(key, items):
    return kv(key, 9, struct.pack("<IQ", 8, len(items)) + b"".join(gstr(x) for x in items))


def arr_num(key, t, fmt, items):
    return kv(key, 9, struct.pack("<IQ", t, len(items)) + b"".join(struct.pack(fmt, x) for x in items))


def gguf(kvs, tensors=()):
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    off = 0
    infos, data = b"", b""
    for name, dims, dtype, blob in tensors:
        infos += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", dtype, off)
        pad = (-len(blob)) % 32
        data += blob + b"\0" * pad
        off += len(blob) + pad
    body = head + infos
    body += b"\0" * ((-len(body)) % 32)
    return body + data


def gguf_seeds():
    toks = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"] + [chr(c) for c in range(0x21, 0x7f)] + ["Ġ", "he", "ll", "llo"]
    types = [2, 3, 3, 3, 3] + [1] * (len(toks) - 5)
    gpt2 = [kv("general.architecture", 8, gstr("llama")),
            kv("tokenizer.ggml.model", 8, gstr("gpt2")),
            kv("tokenizer.ggml.pre", 8, gstr("tekken")),
            arr_str("tokenizer.ggml.tokens", toks),
            arr_num("tokenizer.ggml.token_type", 5, "<i", types),
            arr_str("tokenizer.ggml.merges", ["h e", "l l", "ll o"]),
            kv("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 1)),
            kv("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", 2))]
    put("gguf", "vocab-gpt2", gguf(gpt2))
    spm = [kv("tokenizer.ggml.model", 8, gstr("llama")),
           arr_str("tokenizer.ggml.tokens", ["<unk>", "<s>", "</s>", "<0x41>", "\u2581a", "b", "\u2581"]),
           arr_num("tokenizer.ggml.scores", 6, "<f", [0, 0, 0, 0, -1.0, -2.0, -3.0]),
           arr_num("tokenizer.ggml.token_type", 5, "<i", [2, 3, 3, 6, 1, 1, 1])]
    put("gguf", "vocab-spm", gguf(spm))
    model = [kv("general.architecture", 8, gstr("llama")),
             kv("llama.block_count", 4, struct.pack("<I", 1)),
             kv("llama.embedding_length", 4, struct.pack("<I", 4)),
             kv("general.alignment", 4, struct.pack("<I", 32)),
             kv("x.u8", 0, b"\x07"), kv("x.i16", 3, struct.pack("<h", -3)),
             kv("x.u64", 10, struct.pack("<Q", 1 << 40)), kv("x.f64", 12, struct.pack("<d", 0.5)),
             kv("x.bool", 7, b"\x01"), arr_num("x.arr_f32", 6, "<f", [1.0, 2.5])]
    tensors = [("token_embd.weight", [4, 2], 0, struct.pack("<8f", *range(8))),
               ("output_norm.weight", [4], 1, b"\0" * 8)]
    put("gguf", "model", gguf(model, tensors))


# ---- protobuf (proto/relais.proto) ----
def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def fv(field, n):
    return varint(field << 3) + varint(n)


def fb(field, b):
    return varint(field << 3 | 2) + varint(len(b)) + b


def ff(field, x):
    return varint(field << 3 | 5) + struct.pack("<f", x)


PROTOCOL_VERSION = 2


def env(field, body):
    return fv(1, PROTOCOL_VERSION) + fb(field, body)


def wire_seeds():
    key = b"\x11" * 32
    assign = (fb(1, key) + fv(2, 0) + fv(3, 2) + fv(4, 4) + fv(5, 128) + fv(6, 4) + fv(7, 8) + fv(8, 2)
              + fv(9, (1 << 64) - 1) + fv(11, 1) + fv(12, 2) + fb(13, b"tcp://127.0.0.1:7799") + fb(14, key)
              + fb(15, key) + fb(16, b"tiny.gguf"))
    put("wire", "assign", env(12, assign))
    sampling = ff(1, 0.7) + fv(2, 40) + ff(3, 0.9) + ff(5, 1.1) + fv(8, 42) + fv(9, 2) + fb(10, varint(5) + varint(9))
    # protocol 2: a Forward is a micro-batch; each Segment names its session,
    # position, rows, sampling and whether to sample
    seg = fv(1, 7) + fv(2, 0) + fv(3, 1) + fb(4, sampling) + fv(5, 1)
    fwd_f32 = fv(4, 0) + fb(5, b"\0" * (64 * 4)) + fv(7, 3) + fb(9, seg)
    put("wire", "forward-f32", env(17, fwd_f32))
    i16 = (b"\0\x3c" + b"\1\0" * 32) * 2   # a scale (f16 1.0) then 32 values, per block
    put("wire", "forward-i16", env(17, fv(4, 2) + fb(5, i16) + fv(7, 4) + fb(9, fv(1, 7) + fv(3, 1))))
    two = fb(9, fv(1, 7) + fv(2, 5) + fv(3, 1) + fv(5, 1)) + fb(9, fv(1, 8) + fv(3, 2) + fb(4, sampling))
    put("wire", "forward-two-sessions", env(17, fv(4, 0) + fb(5, b"\0" * (3 * 64 * 4)) + two + fv(10, 9)))
    put("wire", "hello", env(10, fb(1, b"coord") + fb(2, b"\1" * 16)))
    put("wire", "result", env(18, fv(2, 3) + fb(6, fv(1, 7) + fv(2, 42) + fb(3, fv(1, 42) + ff(2, 1.5)) + fv(4, 9))))
    put("wire", "v1-peer", fv(1, 1) + fb(10, fb(1, b"old coordinator")))
    put("wire", "error", env(23, fv(1, 2) + fb(2, b"malformed") + fv(3, 7)))
    rewind = fb(9, fv(1, 7) + fv(2, 3) + fv(3, 1) + fv(9, 1))  # session 7 forgets positions >= 3 first
    put("wire", "forward-rewind", env(17, fv(4, 0) + fb(5, b"\0" * (64 * 4)) + fv(7, 5) + rewind))
    put("wire", "bad-version", fv(1, 9) + fb(22, b""))


# ---- OpenAI request bodies: first byte even = chat, odd = completions ----
def openai_seeds():
    chat = [
        '{"messages":[{"role":"user","content":"Hello"}]}',
        '{"model":"shaped","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],'
        '"max_tokens":8,"temperature":0.5,"top_p":0.9,"seed":3,"stop":["\\n","END"],"stream":true,'
        '"stream_options":{"include_usage":true}}',
        '{"messages":[{"role":"user","content":[{"type":"text","text":"What is the weather?"}]}],'
        '"tools":[{"type":"function","function":{"name":"get_weather","description":"d",'
        '"parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"tool_choice":"auto"}',
        '{"messages":[{"role":"user","content":"w"},{"role":"assistant","tool_calls":[{"id":"abcdefghi",'
        '"type":"function","function":{"name":"f","arguments":"{\\"a\\":1}"}}]},'
        '{"role":"tool","tool_call_id":"abcdefghi","content":"42"}],"presence_penalty":1,"frequency_penalty":-1}',
    ]
    for i, b in enumerate(chat):
        put("openai", "chat-%d" % i, "\0" + b)
    comp = ['{"prompt":"Once upon a time","max_tokens":16,"stop":"time"}',
            '{"prompt":"a b c","max_completion_tokens":4,"stop":["a","b","c","d"],"temperature":0}']
    for i, b in enumerate(comp):
        put("openai", "completion-%d" % i, "\1" + b)


def yaml_seeds():
    put("cluster_yaml", "two-nodes.yaml",
        "coordinator:\n  key: keys/coordinator.key\n  listen: tcp://0.0.0.0:7799\n"
        "  advertise: tcp://192.168.1.10:7799\n  io_cpu: none\nnodes:\n"
        "  - address: tcp://192.168.1.11:7800\n    public_key: keys/n1.pub\n    name: n1\n"
        "  - address: tcp://192.168.1.12:7800\n    public_key: keys/n2.pub\n")
    put("cluster_yaml", "flow.yaml",
        "coordinator: {key: /k/c.key, io_cpu: 1}\nnodes: [{address: \"tcp://[::1]:7800\", public_key: a.pub}]\n")
    put("cluster_yaml", "anchors.yaml",
        "coordinator: &c\n  key: c.key\nnodes:\n  - &n {address: 'tcp://10.0.0.1:1', public_key: p.pub}\n  - *n\n")


def beacon_seeds():
    # proto/beacon.h: "RLB", format 1, protocol, port, key, free memory, name
    key = bytes(range(1, 33))
    put("beacon", "n1", b"RLB\x01" + struct.pack(">HH", 2, 7700) + key + struct.pack(">QB", 3 << 30, 2) + b"n1")
    put("beacon", "reserved-tail", b"RLB\x01" + struct.pack(">HH", 2, 7701) + key +
        struct.pack(">QB", 1 << 20, 8) + b"pi-5.lan" + b"\xee" * 8)


def tokenizer_seeds():
    texts = [(0, "Hello, world! How are you?"), (4, "[INST] What is 2+2? [/INST]"),
             (1, " The quick brown fox"), (5, "<s>[INST] hi [/INST]"), (0, "naïve café 日本語 🤖\n\t  x"),
             (2, "def f(x):\n    return x * 2\n"), (3, "   leading spaces")]
    for i, (flags, t) in enumerate(texts):
        put("tokenizer", "text-%d" % i, bytes([flags]) + t.encode())


if __name__ == "__main__":
    gguf_seeds()
    wire_seeds()
    openai_seeds()
    yaml_seeds()
    tokenizer_seeds()
    beacon_seeds()
