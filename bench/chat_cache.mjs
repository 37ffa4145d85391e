// One client of bench/chat_cache.sh: a chat through the official `openai`
// client, streamed, timing each turn's first token.
//
// MODE=converse: TURNS turns (default 10), each a user message of WORDS words
// (default 70, about 270 tokens) and a greedy answer of MAX_TOKENS (default 24); every turn
// resends the whole history, as a chat client does. Prints one line per turn
// (prompt tokens, cached tokens, ms to the first token) and writes the last
// turn's messages and answer to HISTORY (a JSON file).
// MODE=last: sends HISTORY's last turn alone (to a server without the
// cache, where earlier turns change nothing) and prints the same line; it
// exits 1 if the answer is not the one the conversation got.
// URL: the server's /v1.
import OpenAI from "openai";
import { Agent, fetch } from "undici";
import fs from "fs";

// A prefill of thousands of tokens on a loaded machine takes minutes before
// the first byte (the headers go out with the first token): no header or
// body timeout but the client's own hour.
const agent = new Agent({ headersTimeout: 0, bodyTimeout: 0 });
const client = new OpenAI({ baseURL: process.env.URL, apiKey: "unused", maxRetries: 0, timeout: 3600000, fetch,
    fetchOptions: { dispatcher: agent } });
const TURNS = +(process.env.TURNS || 10), WORDS = +(process.env.WORDS || 70);
const MAX_TOKENS = +(process.env.MAX_TOKENS || 24);
const VOCAB = ["river", "stone", "garden", "lantern", "harbor", "meadow", "copper", "whisper", "orchard", "signal",
    "valley", "thunder", "pocket", "marble", "feather", "compass", "window", "ladder", "silver", "ember"];

function userMessage(turn) {
    const words = [];
    for (let i = 0; i < WORDS; i++)
        words.push(VOCAB[(turn * 7 + i * 13 + (i * i) % 11) % VOCAB.length]);
    return `Turn ${turn + 1}: ${words.join(" ")}.`;
}

// One streamed turn: its answer, usage and the ms to the first chunk (the
// server sends the first one with the first token).
async function turn(messages) {
    const t0 = performance.now();
    let first = null, text = "", usage = null;
    const stream = await client.chat.completions.create({
        model: "bench", messages, max_tokens: MAX_TOKENS, temperature: 0, stream: true,
        stream_options: { include_usage: true },
    });
    for await (const chunk of stream) {
        if (first === null) first = performance.now() - t0;
        if (chunk.choices.length && chunk.choices[0].delta.content) text += chunk.choices[0].delta.content;
        if (chunk.usage) usage = chunk.usage;
    }
    const cached = usage.prompt_tokens_details ? usage.prompt_tokens_details.cached_tokens : 0;
    return { text, first, prompt: usage.prompt_tokens, cached };
}

const line = (i, r) => console.log(`turn ${i} prompt_tokens ${r.prompt} cached_tokens ${r.cached} ttft_ms ${r.first.toFixed(0)}`);

if (process.env.MODE === "last") {
    const h = JSON.parse(fs.readFileSync(process.env.HISTORY, "utf8"));
    const r = await turn(h.messages);
    line(h.turn, r);
    if (r.text !== h.answer) {
        console.log(`answer differs: ${JSON.stringify(r.text)} vs ${JSON.stringify(h.answer)}`);
        process.exit(1);
    }
} else {
    const messages = [];
    for (let i = 0; i < TURNS; i++) {
        messages.push({ role: "user", content: userMessage(i) });
        const r = await turn(messages);
        line(i + 1, r);
        if (i + 1 === TURNS)
            fs.writeFileSync(process.env.HISTORY, JSON.stringify({ turn: i + 1, messages, answer: r.text }));
        messages.push({ role: "assistant", content: r.text });
    }
}
