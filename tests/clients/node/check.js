#!/usr/bin/env node
/*
 * Client-compatibility check: a scripted session of node-zookeeper-client
 * (a pure-JavaScript ZooKeeper client) against one server.
 *
 *     node check.js 127.0.0.1:2181
 *
 * Prints one JSON object per line, one per step, in a fixed order:
 *
 *     {"step": "<name>", "error": null | {"code": -103, "name": "BAD_VERSION"}, ...}
 *
 * "error" is the ZooKeeper error the server answered with (a result in its
 * own right: several steps expect one).  A step that could not finish at all
 * (no answer in time, the client threw) has "failure": "<why>" instead, and
 * the script goes on with the next step.  Exit status: 0 when every step
 * finished (whatever the server answered), 1 when a step has a "failure",
 * 2 on bad usage.
 *
 * Values are printed raw: zxids as decimal strings, times as epoch
 * milliseconds, session ids as "0x..." hex strings.  The pytest wrapper
 * (tests/clients/test_node_client.py) normalises them before comparing the
 * transcripts of zkpy and Apache ZooKeeper.
 *
 * Two clients take part: "a" does most of the work; "b" is the second
 * client that changes nodes to fire a's watches, checks ACLs from another
 * session, and sees a's ephemerals vanish when a closes.
 */

'use strict';

const crypto = require('crypto');
const zookeeper = require('node-zookeeper-client');

const { ACL, Id, Permission, CreateMode, Exception } = zookeeper;

const STEP_TIMEOUT_MS = Number(process.env.CHECK_STEP_TIMEOUT_MS || 10000);
const ROOT = '/nodecheck';

// ---------------------------------------------------------------- output --

let failures = 0;

function emit(step, fields) {
    process.stdout.write(JSON.stringify(Object.assign({ step }, fields)) + '\n');
}

function errorOf(e) {
    if (e instanceof Exception) {
        return { code: e.getCode(), name: e.getName() };
    }
    throw e; // not a server answer: the step fails
}

function longOf(buf) {
    return buf.readBigInt64BE(0);
}

function hexOf(buf) {
    return '0x' + BigInt.asUintN(64, longOf(buf)).toString(16);
}

function statOf(stat) {
    if (!stat) {
        return null;
    }
    return {
        czxid: longOf(stat.czxid).toString(),
        mzxid: longOf(stat.mzxid).toString(),
        pzxid: longOf(stat.pzxid).toString(),
        ctime: Number(longOf(stat.ctime)),
        mtime: Number(longOf(stat.mtime)),
        version: stat.version,
        cversion: stat.cversion,
        aversion: stat.aversion,
        ephemeralOwner: hexOf(stat.ephemeralOwner),
        dataLength: stat.dataLength,
        numChildren: stat.numChildren,
    };
}

function aclsOf(acls) {
    if (!acls) {
        return null;
    }
    return acls.map((a) => ({ perms: a.permission, scheme: a.id.scheme, id: a.id.id }));
}

function dataOf(data) {
    return data === undefined || data === null ? null : data.toString('utf8');
}

function multiResultsOf(results) {
    if (!results) {
        return null;
    }
    return results.map((r) => {
        const out = { type: r.type };
        if (r.path !== undefined) out.path = r.path;
        if (r.stat !== undefined) out.stat = statOf(r.stat);
        if (r.err !== undefined) out.err = r.err;
        return out;
    });
}

// ---------------------------------------------------------------- async --

function withTimeout(promise, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(
            () => reject(new Error(`timeout: no ${what} within ${STEP_TIMEOUT_MS} ms`)),
            STEP_TIMEOUT_MS
        );
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Calls client.method(...args, callback); resolves to {error, values}, where
// error is null or a ZooKeeper Exception and values are the callback's other
// arguments.
function call(client, method, ...args) {
    return withTimeout(
        new Promise((resolve, reject) => {
            try {
                client[method](...args, (error, ...values) => resolve({ error, values }));
            } catch (e) {
                reject(e);
            }
        }),
        `reply to ${method}`
    );
}

function commit(transaction) {
    return withTimeout(
        new Promise((resolve) => {
            transaction.commit((error, results) => resolve({ error, results }));
        }),
        'reply to transaction commit'
    );
}

// All watch events, per client, in the order the client saw them.
const eventLog = { a: [], b: [] };

// A one-shot watcher: `watcher` is given to the client, `fired` resolves with
// the first event it gets.
function watch(clientName, label) {
    let resolveFired;
    const fired = new Promise((resolve) => {
        resolveFired = resolve;
    });
    const watcher = (event) => {
        const ev = { type: event.getType(), name: event.getName(), path: event.getPath() };
        eventLog[clientName].push(Object.assign({ watcher: label }, ev));
        resolveFired(ev);
    };
    return { watcher, fired: () => withTimeout(fired, `watch event for ${label}`) };
}

function onceState(client, eventName) {
    return withTimeout(
        new Promise((resolve) => client.once(eventName, resolve)),
        `'${eventName}' event`
    );
}

async function step(name, fn) {
    let fields;
    try {
        fields = await fn();
    } catch (e) {
        failures += 1;
        emit(name, { failure: String(e && e.stack ? e.stack.split('\n')[0] : e) });
        return;
    }
    emit(name, fields);
}

// Result of an operation with no value (delete, ...).
function plain({ error }) {
    return { error: error ? errorOf(error) : null };
}

const text = (s) => Buffer.from(s, 'utf8');

// ----------------------------------------------------------------- main --

async function connect(hostport) {
    const client = zookeeper.createClient(hostport, {
        sessionTimeout: 30000,
        spinDelay: 200,
        retries: 0,
    });
    const connected = onceState(client, 'connected');
    client.connect();
    await connected;
    return client;
}

function sessionFields(client) {
    return {
        error: null,
        state: client.getState().getName(),
        session_id: hexOf(client.getSessionId()),
        session_timeout: client.getSessionTimeout(),
        password_length: client.getSessionPassword().length,
    };
}

async function main(hostport) {
    let a;
    let b;

    // -- connect --------------------------------------------------------
    await step('connect_a', async () => {
        a = await connect(hostport);
        return sessionFields(a);
    });
    await step('connect_b', async () => {
        b = await connect(hostport);
        return sessionFields(b);
    });
    if (!a || !b) {
        return; // nothing else can run; the failure is already reported
    }

    // -- create ---------------------------------------------------------
    await step('create_root', async () => {
        const r = await call(a, 'create', ROOT, text('root'), CreateMode.PERSISTENT);
        return Object.assign(plain(r), { path: r.values[0] || null });
    });
    await step('create_persistent', async () => {
        const r = await call(a, 'create', `${ROOT}/p`, text('hello'), CreateMode.PERSISTENT);
        return Object.assign(plain(r), { path: r.values[0] || null });
    });
    await step('create_ephemeral', async () => {
        const r = await call(a, 'create', `${ROOT}/eph`, text('e'), CreateMode.EPHEMERAL);
        return Object.assign(plain(r), { path: r.values[0] || null });
    });
    await step('exists_ephemeral_from_b', async () => {
        const r = await call(b, 'exists', `${ROOT}/eph`);
        return Object.assign(plain(r), { stat: statOf(r.values[0]) });
    });
    await step('create_persistent_sequential', async () => {
        const r = await call(a, 'create', `${ROOT}/seq-`, text('s1'), CreateMode.PERSISTENT_SEQUENTIAL);
        return Object.assign(plain(r), { path: r.values[0] || null });
    });
    await step('create_persistent_sequential_again', async () => {
        const r = await call(a, 'create', `${ROOT}/seq-`, text('s2'), CreateMode.PERSISTENT_SEQUENTIAL);
        return Object.assign(plain(r), { path: r.values[0] || null });
    });
    await step('create_ephemeral_sequential', async () => {
        const r = await call(a, 'create', `${ROOT}/eseq-`, null, CreateMode.EPHEMERAL_SEQUENTIAL);
        return Object.assign(plain(r), { path: r.values[0] || null });
    });
    await step('create_existing', async () => {
        const r = await call(a, 'create', `${ROOT}/p`, text('again'), CreateMode.PERSISTENT);
        return Object.assign(plain(r), { path: r.values[0] || null });
    });
    await step('create_without_parent', async () => {
        const r = await call(a, 'create', `${ROOT}/missing/x`, text('x'), CreateMode.PERSISTENT);
        return Object.assign(plain(r), { path: r.values[0] || null });
    });
    await step('create_under_ephemeral', async () => {
        const r = await call(a, 'create', `${ROOT}/eph/x`, text('x'), CreateMode.PERSISTENT);
        return Object.assign(plain(r), { path: r.values[0] || null });
    });

    // -- getData + watch, setData from b -------------------------------
    const dataWatch = watch('a', 'getData p');
    await step('get_data_watch', async () => {
        const r = await call(a, 'getData', `${ROOT}/p`, dataWatch.watcher);
        return Object.assign(plain(r), { data: dataOf(r.values[0]), stat: statOf(r.values[1]) });
    });
    await step('set_data_from_b', async () => {
        const r = await call(b, 'setData', `${ROOT}/p`, text('world'), 0);
        return Object.assign(plain(r), { stat: statOf(r.values[0]) });
    });
    await step('data_watch_event', async () => ({ error: null, event: await dataWatch.fired() }));
    await step('get_data_after_set', async () => {
        const r = await call(a, 'getData', `${ROOT}/p`);
        return Object.assign(plain(r), { data: dataOf(r.values[0]), stat: statOf(r.values[1]) });
    });
    await step('get_data_null', async () => {
        const r = await call(a, 'getData', `${ROOT}/eseq-0000000004`);
        return Object.assign(plain(r), { data: dataOf(r.values[0]), stat: statOf(r.values[1]) });
    });
    await step('get_data_missing', async () => {
        const r = await call(a, 'getData', `${ROOT}/nope`);
        return Object.assign(plain(r), { data: dataOf(r.values[0]) });
    });

    // -- exists (+ watch on a missing node, created by b) --------------
    await step('exists', async () => {
        const r = await call(a, 'exists', `${ROOT}/p`);
        return Object.assign(plain(r), { stat: statOf(r.values[0]) });
    });
    const existsWatch = watch('a', 'exists later');
    await step('exists_missing_watch', async () => {
        const r = await call(a, 'exists', `${ROOT}/later`, existsWatch.watcher);
        return Object.assign(plain(r), { stat: statOf(r.values[0]) });
    });
    await step('create_watched_from_b', async () => {
        const r = await call(b, 'create', `${ROOT}/later`, text('l'), CreateMode.PERSISTENT);
        return Object.assign(plain(r), { path: r.values[0] || null });
    });
    await step('exists_watch_event', async () => ({ error: null, event: await existsWatch.fired() }));

    // -- getChildren + watch, child created by b -----------------------
    const childWatch = watch('a', 'getChildren root');
    await step('get_children_watch', async () => {
        const r = await call(a, 'getChildren', ROOT, childWatch.watcher);
        const children = r.values[0] ? [...r.values[0]].sort() : null;
        return Object.assign(plain(r), { children, stat: statOf(r.values[1]) });
    });
    await step('create_child_from_b', async () => {
        const r = await call(b, 'create', `${ROOT}/child`, text('c'), CreateMode.PERSISTENT);
        return Object.assign(plain(r), { path: r.values[0] || null });
    });
    await step('child_watch_event', async () => ({ error: null, event: await childWatch.fired() }));
    await step('get_children_missing', async () => {
        const r = await call(a, 'getChildren', `${ROOT}/nope`);
        return Object.assign(plain(r), { children: r.values[0] || null });
    });

    // -- setData with a bad version ------------------------------------
    await step('set_data_bad_version', async () => {
        const r = await call(a, 'setData', `${ROOT}/p`, text('stale'), 0); // p is at version 1
        return Object.assign(plain(r), { stat: statOf(r.values[0]) });
    });
    await step('set_data_missing', async () => {
        const r = await call(a, 'setData', `${ROOT}/nope`, text('x'), -1);
        return Object.assign(plain(r), { stat: statOf(r.values[0]) });
    });
    await step('get_data_unchanged', async () => {
        const r = await call(a, 'getData', `${ROOT}/p`);
        return Object.assign(plain(r), { data: dataOf(r.values[0]), stat: statOf(r.values[1]) });
    });

    // -- delete ----------------------------------------------------------
    await step('delete', async () => plain(await call(a, 'remove', `${ROOT}/child`, -1)));
    await step('delete_missing', async () => plain(await call(a, 'remove', `${ROOT}/child`, -1)));
    await step('delete_not_empty', async () => plain(await call(a, 'remove', ROOT, -1)));
    await step('delete_bad_version', async () => plain(await call(a, 'remove', `${ROOT}/later`, 5)));
    await step('delete_with_version', async () => plain(await call(a, 'remove', `${ROOT}/later`, 0)));
    await step('exists_deleted', async () => {
        const r = await call(a, 'exists', `${ROOT}/later`);
        return Object.assign(plain(r), { stat: statOf(r.values[0]) });
    });

    // -- getACL / setACL -----------------------------------------------
    await step('get_acl', async () => {
        const r = await call(a, 'getACL', `${ROOT}/p`);
        return Object.assign(plain(r), { acls: aclsOf(r.values[0]), stat: statOf(r.values[1]) });
    });
    const readOnlyAcl = [new ACL(Permission.READ, Id.ANYONE_ID_UNSAFE)];
    await step('set_acl_bad_version', async () => {
        const r = await call(a, 'setACL', `${ROOT}/p`, readOnlyAcl, 5); // aversion is 0
        return Object.assign(plain(r), { stat: statOf(r.values[0]) });
    });
    await step('set_acl', async () => {
        const r = await call(a, 'setACL', `${ROOT}/p`, readOnlyAcl, 0);
        return Object.assign(plain(r), { stat: statOf(r.values[0]) });
    });
    await step('set_acl_without_admin', async () => {
        // ADMIN is checked before the version: NoAuth, not BadVersion.
        const r = await call(a, 'setACL', `${ROOT}/p`, readOnlyAcl, 0); // aversion is now 1
        return Object.assign(plain(r), { stat: statOf(r.values[0]) });
    });
    await step('get_acl_after_set', async () => {
        const r = await call(a, 'getACL', `${ROOT}/p`);
        return Object.assign(plain(r), { acls: aclsOf(r.values[0]), stat: statOf(r.values[1]) });
    });
    await step('set_data_read_only_acl', async () => {
        const r = await call(a, 'setData', `${ROOT}/p`, text('denied'), -1);
        return Object.assign(plain(r), { stat: statOf(r.values[0]) });
    });
    await step('get_data_read_only_acl', async () => {
        const r = await call(a, 'getData', `${ROOT}/p`);
        return Object.assign(plain(r), { data: dataOf(r.values[0]), stat: statOf(r.values[1]) });
    });
    await step('get_acl_missing', async () => {
        const r = await call(a, 'getACL', `${ROOT}/nope`);
        return Object.assign(plain(r), { acls: aclsOf(r.values[0]) });
    });

    // -- transactions (multi) ------------------------------------------
    // Note: Transaction.check/setData/remove turn version 0 into -1
    // (`version || -1`), so only non-zero versions are used here.
    await step('transaction_ok', async () => {
        const r = await commit(
            a.transaction()
                .create(`${ROOT}/tx`, text('t1'))
                .setData(`${ROOT}/tx`, text('t2'), -1)
                .check(`${ROOT}/seq-0000000002`, -1)
                .create(`${ROOT}/tx-tmp`, text('tmp'), CreateMode.PERSISTENT)
                .remove(`${ROOT}/tx-tmp`, -1)
                .create(`${ROOT}/tx-seq-`, text('q'), CreateMode.PERSISTENT_SEQUENTIAL)
        );
        return Object.assign(plain(r), { results: multiResultsOf(r.results) });
    });
    await step('transaction_ok_effect', async () => {
        const r = await call(a, 'getData', `${ROOT}/tx`);
        return Object.assign(plain(r), { data: dataOf(r.values[0]), stat: statOf(r.values[1]) });
    });
    await step('transaction_fail', async () => {
        const r = await commit(
            a.transaction()
                .create(`${ROOT}/tx-fail`, text('f'))
                .setData(`${ROOT}/tx`, text('never'), -1)
                .check(`${ROOT}/tx`, 42) // tx is at version 1
                .create(`${ROOT}/tx-fail2`, text('f2'))
        );
        return Object.assign(plain(r), { results: multiResultsOf(r.results) });
    });
    await step('transaction_fail_no_effect', async () => {
        const created = await call(a, 'exists', `${ROOT}/tx-fail`);
        const unchanged = await call(a, 'getData', `${ROOT}/tx`);
        return Object.assign(plain(created), {
            tx_fail_stat: statOf(created.values[0]),
            tx_data: dataOf(unchanged.values[0]),
            tx_stat: statOf(unchanged.values[1]),
        });
    });
    await step('transaction_fail_no_node', async () => {
        const r = await commit(
            a.transaction()
                .create(`${ROOT}/tx-fail3`, text('f3'))
                .remove(`${ROOT}/nope`, -1)
        );
        return Object.assign(plain(r), { results: multiResultsOf(r.results) });
    });

    // -- addAuthInfo digest --------------------------------------------
    const expectedDigest =
        'alice:' + crypto.createHash('sha1').update('alice:secret').digest('base64');
    await step('create_creator_acl_without_auth', async () => {
        const r = await call(b, 'create', `${ROOT}/bsecret`, text('b'), ACL.CREATOR_ALL_ACL,
            CreateMode.PERSISTENT);
        return Object.assign(plain(r), { path: r.values[0] || null });
    });
    await step('add_auth_a', async () => {
        a.addAuthInfo('digest', text('alice:secret'));
        // The auth packet gets no callback; the next request on the same
        // connection is answered after it, so a round trip settles it.
        const r = await call(a, 'exists', ROOT);
        return { error: null, state: a.getState().getName(), round_trip_error: plain(r).error };
    });
    await step('create_creator_acl_with_auth', async () => {
        const r = await call(a, 'create', `${ROOT}/secret`, text('s'), ACL.CREATOR_ALL_ACL,
            CreateMode.PERSISTENT);
        return Object.assign(plain(r), { path: r.values[0] || null });
    });
    await step('get_acl_digest', async () => {
        const r = await call(a, 'getACL', `${ROOT}/secret`);
        return Object.assign(plain(r), {
            acls: aclsOf(r.values[0]),
            expected_digest_id: expectedDigest,
            stat: statOf(r.values[1]),
        });
    });
    await step('get_data_digest_a', async () => {
        const r = await call(a, 'getData', `${ROOT}/secret`);
        return Object.assign(plain(r), { data: dataOf(r.values[0]) });
    });
    await step('get_data_digest_b_no_auth', async () => {
        const r = await call(b, 'getData', `${ROOT}/secret`);
        return Object.assign(plain(r), { data: dataOf(r.values[0]) });
    });
    await step('get_data_digest_b_wrong_password', async () => {
        b.addAuthInfo('digest', text('alice:wrong'));
        const r = await call(b, 'getData', `${ROOT}/secret`);
        return Object.assign(plain(r), { data: dataOf(r.values[0]), state: b.getState().getName() });
    });
    await step('get_data_digest_b_right_password', async () => {
        b.addAuthInfo('digest', text('alice:secret'));
        const r = await call(b, 'getData', `${ROOT}/secret`);
        return Object.assign(plain(r), { data: dataOf(r.values[0]), state: b.getState().getName() });
    });
    // A client with READ but without ADMIN sees digest ids redacted ("user:x").
    await step('set_acl_digest_explicit', async () => {
        const digestAcl = [
            new ACL(Permission.READ | Permission.WRITE, new Id('digest', expectedDigest)),
            new ACL(Permission.READ, Id.ANYONE_ID_UNSAFE),
        ];
        const set = await call(b, 'setACL', `${ROOT}/secret`, digestAcl, -1);
        const get = await call(a, 'getACL', `${ROOT}/secret`);
        return Object.assign(plain(set), {
            stat: statOf(set.values[0]),
            acls: aclsOf(get.values[0]),
        });
    });

    // -- close: a's ephemerals disappear for b --------------------------
    const ephWatch = watch('b', 'exists eph');
    await step('exists_ephemeral_watch_from_b', async () => {
        const r = await call(b, 'exists', `${ROOT}/eph`, ephWatch.watcher);
        return Object.assign(plain(r), { stat: statOf(r.values[0]) });
    });
    await step('close_a', async () => {
        const disconnected = onceState(a, 'disconnected');
        a.close();
        await disconnected;
        return { error: null, state: a.getState().getName() };
    });
    await step('ephemeral_deleted_event', async () => ({ error: null, event: await ephWatch.fired() }));
    await step('exists_ephemeral_after_close', async () => {
        const r = await call(b, 'exists', `${ROOT}/eph`);
        return Object.assign(plain(r), { stat: statOf(r.values[0]) });
    });
    await step('get_children_after_close', async () => {
        const r = await call(b, 'getChildren', ROOT);
        const children = r.values[0] ? [...r.values[0]].sort() : null;
        return Object.assign(plain(r), { children, stat: statOf(r.values[1]) });
    });
    await step('close_b', async () => {
        const disconnected = onceState(b, 'disconnected');
        b.close();
        await disconnected;
        return { error: null, state: b.getState().getName() };
    });

    // Give late (spurious) notifications a moment to show up in the log.
    await new Promise((resolve) => setTimeout(resolve, 200));
    emit('event_log', { error: null, a: eventLog.a, b: eventLog.b });
}

if (process.argv.length !== 3 || !/^[^:]+:\d+$/.test(process.argv[2])) {
    process.stderr.write('usage: node check.js HOST:PORT\n');
    process.exit(2);
}

main(process.argv[2]).then(
    () => process.exit(failures ? 1 : 0),
    (e) => {
        process.stderr.write(`check.js: ${e && e.stack ? e.stack : e}\n`);
        process.exit(1);
    }
);
