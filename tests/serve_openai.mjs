// The official `openai` client against a real `relais serve`: model list,
// chat, streaming (same text as the whole answer), logprobs and
// top_logprobs (plain and streamed, greedy and sampled), a full tool-call round
// trip (tools -> tool_calls -> tool message -> answer) plain and streamed,
// JSON output (response_format json_object: the text parses as one object;
// json_schema: it follows the schema), and the client's typed errors for a
// bad field, a model not served, a schema keyword not enforced, and a bad key.
//
// Run by serve_openai.sh from the folder where it installed the package.
// CHAT_URL: a server of an ordinary model; TOOLS_URL: the parrot model's,
// whose greedy output is a get_weather call, then the answer to its result.
import OpenAI from "openai";
import fs from "node:fs";

let passed = 0, failed = 0;
async function check(name, fn) {
    try {
        await fn();
        passed++;
        console.log(`ok - ${name}`);
    } catch (e) {
        failed++;
        console.log(`FAIL - ${name}: ${e && e.stack ? e.stack : e}`);
    }
}
function assert(cond, what) {
    if (!cond) throw new Error(what);
}

const chat = new OpenAI({ baseURL: process.env.CHAT_URL, apiKey: "sekrit", maxRetries: 0, timeout: 60000 });
const tools = new OpenAI({ baseURL: process.env.TOOLS_URL, apiKey: "unused", maxRetries: 0, timeout: 60000 });
const ask = [{ role: "user", content: "Tell me about the sea." }];
const weatherTool = [{
    type: "function",
    function: {
        name: "get_weather",
        description: "Get the weather for a city",
        parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
}];

let whole = null;
await check("models.list", async () => {
    const list = await chat.models.list();
    assert(list.data.length === 1 && typeof list.data[0].id === "string", JSON.stringify(list.data));
});
await check("chat", async () => {
    const r = await chat.chat.completions.create({ model: "tiny-q8_0", messages: ask, max_tokens: 12, temperature: 0 });
    assert(r.object === "chat.completion", r.object);
    assert(typeof r.choices[0].message.content === "string", "content");
    assert(["stop", "length"].includes(r.choices[0].finish_reason), r.choices[0].finish_reason);
    assert(r.usage.completion_tokens > 0 && r.usage.prompt_tokens > 0, JSON.stringify(r.usage));
    whole = r.choices[0].message.content;
});
await check("streaming gives the same text", async () => {
    const stream = await chat.chat.completions.create({
        model: "tiny-q8_0", messages: ask, max_tokens: 12, temperature: 0, stream: true,
        stream_options: { include_usage: true },
    });
    let text = "", finish = null, usage = null;
    for await (const chunk of stream) {
        if (chunk.usage) usage = chunk.usage;
        for (const c of chunk.choices) {
            text += c.delta.content || "";
            finish = c.finish_reason || finish;
        }
    }
    assert(text === whole, `${JSON.stringify(text)} vs ${JSON.stringify(whole)}`);
    assert(finish !== null && usage && usage.completion_tokens > 0, "finish/usage");
});
// One logprobs entry: a token, its log-probability, its bytes, and the top
// ones in order, each a probability (the mass of any top list at most 1).
function checkEntry(t, nTop) {
    assert(typeof t.token === "string" && Array.isArray(t.bytes) && t.bytes.length > 0, JSON.stringify(t));
    assert(t.token.startsWith("bytes:") || t.token === Buffer.from(t.bytes).toString("utf8"), JSON.stringify(t));
    assert(t.logprob <= 0 && t.top_logprobs.length === nTop, JSON.stringify(t));
    for (let i = 1; i < t.top_logprobs.length; i++)
        assert(t.top_logprobs[i].logprob <= t.top_logprobs[i - 1].logprob, "top_logprobs in order");
    const mass = t.top_logprobs.reduce((m, x) => m + Math.exp(x.logprob), 0);
    assert(mass <= 1 + 1e-4, `top mass ${mass}`);
    const same = t.top_logprobs.find((x) => x.token === t.token && x.bytes.join() === t.bytes.join());
    assert(!same || Math.abs(same.logprob - t.logprob) < 1e-6, "the token's logprob as in its top list");
}
let greedyLogprobs = null;
await check("logprobs: an entry per token, the greedy pick the most likely", async () => {
    const r = await chat.chat.completions.create({
        model: "tiny-q8_0", messages: ask, max_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 5,
    });
    const lp = r.choices[0].logprobs.content;
    assert(r.choices[0].message.content === whole, "the same text with logprobs");
    assert(lp.length === r.usage.completion_tokens, `${lp.length} entries, ${r.usage.completion_tokens} tokens`);
    for (const t of lp) {
        checkEntry(t, 5);
        assert(t.token === t.top_logprobs[0].token && t.logprob === t.top_logprobs[0].logprob, JSON.stringify(t));
    }
    assert(lp.some((t) => t.logprob < -1e-3), "not every token certain: the logprobs are not all 0");
    greedyLogprobs = lp;
    if (process.env.LOGPROBS_OUT) fs.writeFileSync(process.env.LOGPROBS_OUT, JSON.stringify(lp));
});
await check("logprobs streamed: the same entries, with their text", async () => {
    const stream = await chat.chat.completions.create({
        model: "tiny-q8_0", messages: ask, max_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 5,
        stream: true,
    });
    const lp = [];
    for await (const chunk of stream)
        for (const c of chunk.choices) lp.push(...((c.logprobs && c.logprobs.content) || []));
    assert(JSON.stringify(lp) === JSON.stringify(greedyLogprobs), `${JSON.stringify(lp)} vs ${JSON.stringify(greedyLogprobs)}`);
});
await check("logprobs of sampled tokens, top_logprobs 20 and 0", async () => {
    for (const top of [20, 0]) {
        const r = await chat.chat.completions.create({
            model: "tiny-q8_0", messages: ask, max_tokens: 24, temperature: 1.5, seed: 5, logprobs: true,
            top_logprobs: top,
        });
        const lp = r.choices[0].logprobs.content;
        assert(lp.length === r.usage.completion_tokens, "an entry per token");
        lp.forEach((t) => checkEntry(t, top));
        if (top) assert(lp.some((t) => t.token !== t.top_logprobs[0].token), "a sampled token other than the likeliest");
    }
});
await check("top_logprobs without logprobs is a 400", async () => {
    try {
        await chat.chat.completions.create({ model: "tiny-q8_0", messages: ask, top_logprobs: 3 });
        throw new Error("no error");
    } catch (e) {
        assert(e instanceof OpenAI.BadRequestError && e.param === "top_logprobs", `${e}`);
    }
});
await check("a bad field is a 400 naming it", async () => {
    try {
        await chat.chat.completions.create({ model: "tiny-q8_0", messages: ask, temperature: 5 });
        throw new Error("no error");
    } catch (e) {
        assert(e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === "temperature", `${e}`);
    }
});
await check("a model the server does not serve is a 404", async () => {
    try {
        await chat.chat.completions.create({ model: "gpt-4o", messages: ask, max_tokens: 2 });
        throw new Error("no error");
    } catch (e) {
        assert(e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === "model_not_found", `${e}`);
    }
});
// response_format json_object: whatever the model, the text is one JSON
// object, greedy or sampled, whole or streamed, and ends ("stop") as soon
// as the object is complete, even with a budget of a few tokens.
const jsonOut = [];
function jsonObject(text, finish, what) {
    let v;
    try {
        v = JSON.parse(text);
    } catch (e) {
        throw new Error(`${what}: not JSON (${e.message}): ${JSON.stringify(text)}`);
    }
    assert(v !== null && typeof v === "object" && !Array.isArray(v), `${what}: not an object: ${text}`);
    assert(finish === "stop", `${what}: finish_reason ${finish}`);
    jsonOut.push(text);
}
await check("response_format json_object: one JSON object, greedy and sampled", async () => {
    const runs = [{ temperature: 0, max_tokens: 40 }, { temperature: 0, max_tokens: 3 }];
    for (const seed of [1, 2, 3, 4]) runs.push({ temperature: 1.5, seed, max_tokens: 8 + 12 * seed });
    for (const opt of runs) {
        const r = await chat.chat.completions.create({
            model: "tiny-q8_0", messages: ask, response_format: { type: "json_object" }, ...opt,
        });
        jsonObject(r.choices[0].message.content, r.choices[0].finish_reason, JSON.stringify(opt));
        assert(r.usage.completion_tokens <= opt.max_tokens, JSON.stringify(r.usage));
    }
    const text = jsonOut[0];
    const stream = await chat.chat.completions.create({
        model: "tiny-q8_0", messages: ask, response_format: { type: "json_object" }, temperature: 0, max_tokens: 40,
        stream: true,
    });
    let streamed = "", finish = null;
    for await (const chunk of stream) {
        streamed += chunk.choices[0]?.delta?.content || "";
        finish = chunk.choices[0]?.finish_reason || finish;
    }
    assert(streamed === text && finish === "stop", `streamed ${JSON.stringify(streamed)} vs ${JSON.stringify(text)}`);
    if (process.env.JSON_OUT) fs.writeFileSync(process.env.JSON_OUT, JSON.stringify(jsonOut));
});
// response_format json_schema: the object follows the schema (each
// property there, of its type, an enum's value, nested objects and arrays);
// a keyword relais does not enforce is a 400 naming it.
const person = {
    type: "object",
    properties: {
        name: { type: "string", description: "who" },
        age: { type: "integer" },
        height: { type: "number" },
        member: { type: "boolean" },
        tags: { type: "array", items: { type: "string" } },
        color: { enum: ["red", "green", 7, null] },
        home: { type: "object", properties: { city: { type: "string" }, floors: { type: "array", items: { type: "integer" } } },
                required: ["city"] },
    },
    required: ["name", "age"],
    additionalProperties: false,
};
function followsPerson(v, text) {
    const keys = Object.keys(person.properties);
    assert(JSON.stringify(Object.keys(v)) === JSON.stringify(keys), `properties: ${text}`);
    assert(typeof v.name === "string" && Number.isInteger(v.age) && typeof v.height === "number" &&
        typeof v.member === "boolean" && Array.isArray(v.tags) && v.tags.every((t) => typeof t === "string") &&
        ["red", "green", 7, null].includes(v.color) && typeof v.home.city === "string" &&
        Array.isArray(v.home.floors) && v.home.floors.every(Number.isInteger), `types: ${text}`);
}
await check("response_format json_schema: the object follows the schema, greedy and sampled", async () => {
    const format = { type: "json_schema", json_schema: { name: "person", strict: true, schema: person } };
    const runs = [{ temperature: 0, max_tokens: 120 }];
    for (const seed of [1, 2, 3]) runs.push({ temperature: 1.5, seed, max_tokens: 90 + 30 * seed });
    for (const opt of runs) {
        const r = await chat.chat.completions.create({ model: "tiny-q8_0", messages: ask, response_format: format, ...opt });
        const text = r.choices[0].message.content;
        jsonObject(text, r.choices[0].finish_reason, JSON.stringify(opt));
        followsPerson(JSON.parse(text), text);
    }
    if (process.env.JSON_OUT) fs.writeFileSync(process.env.JSON_OUT, JSON.stringify(jsonOut));
});
await check("response_format json_schema with a keyword not enforced is a 400 naming it", async () => {
    try {
        await chat.chat.completions.create({ model: "tiny-q8_0", messages: ask, response_format: { type: "json_schema",
            json_schema: { name: "a", schema: { type: "object", properties: { n: { type: "integer", minimum: 3 } } } } } });
        throw new Error("no error");
    } catch (e) {
        assert(e instanceof OpenAI.BadRequestError && e.param === "response_format" && e.message.includes("'minimum'"),
            `${e}`);
    }
});
await check("a wrong key is a 401", async () => {
    const wrong = new OpenAI({ baseURL: process.env.CHAT_URL, apiKey: "nope", maxRetries: 0 });
    try {
        await wrong.models.list();
        throw new Error("no error");
    } catch (e) {
        assert(e instanceof OpenAI.AuthenticationError && e.status === 401, `${e}`);
    }
});

const question = [{ role: "user", content: "What is the weather in Paris?" }];
await check("tool-call round trip", async () => {
    const r1 = await tools.chat.completions.create({ model: "parrot", messages: question, tools: weatherTool, temperature: 0 });
    const msg = r1.choices[0].message;
    assert(r1.choices[0].finish_reason === "tool_calls", r1.choices[0].finish_reason);
    assert(msg.tool_calls.length === 1 && /^[A-Za-z0-9]{9}$/.test(msg.tool_calls[0].id), JSON.stringify(msg));
    const call = msg.tool_calls[0];
    assert(call.function.name === "get_weather" && JSON.parse(call.function.arguments).city === "Paris", JSON.stringify(call));
    const r2 = await tools.chat.completions.create({
        model: "parrot", tools: weatherTool, temperature: 0,
        messages: [...question, msg, { role: "tool", tool_call_id: call.id, content: JSON.stringify({ temp_c: 18 }) }],
    });
    assert(r2.choices[0].message.content === "It is 18 degrees in Paris.", JSON.stringify(r2.choices[0].message));
    assert(r2.choices[0].finish_reason === "stop", r2.choices[0].finish_reason);
});
await check("tool calls streamed as deltas", async () => {
    const stream = await tools.chat.completions.create({
        model: "parrot", messages: question, tools: weatherTool, temperature: 0, stream: true,
    });
    const calls = [];
    let finish = null;
    for await (const chunk of stream) {
        const c = chunk.choices[0];
        for (const d of c.delta.tool_calls || []) {
            calls[d.index] = calls[d.index] || { id: "", name: "", arguments: "" };
            if (d.id) calls[d.index].id = d.id;
            if (d.function && d.function.name) calls[d.index].name += d.function.name;
            if (d.function && d.function.arguments) calls[d.index].arguments += d.function.arguments;
        }
        finish = c.finish_reason || finish;
    }
    assert(finish === "tool_calls" && calls.length === 1, `${finish} ${JSON.stringify(calls)}`);
    assert(calls[0].name === "get_weather" && JSON.parse(calls[0].arguments).city === "Paris", JSON.stringify(calls));
    assert(/^[A-Za-z0-9]{9}$/.test(calls[0].id), calls[0].id);
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
