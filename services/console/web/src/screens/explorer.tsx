import { useState } from 'preact/hooks';
import { api, type KeyRow } from '../api';
import { go, href } from '../route';
import { Failure, Tabs, useLoad } from './common';

/** A namespace's keys, as a tree or a flat list, searched on the server by
 * key prefix and value, now or as of a revision. */
export function Explorer(props: { namespace: string; query: URLSearchParams }) {
  const ns = props.namespace;
  const prefix = props.query.get('prefix') ?? '';
  const search = props.query.get('search') ?? '';
  const at = props.query.get('at') ? Number(props.query.get('at')) : undefined;
  const [tree, setTree] = useState(false);
  const [view, error] = useLoad(() => api.keys(ns, prefix, search, at), [ns, prefix, search, at]);
  const [form, setForm] = useState({ prefix, search, at: at ? String(at) : '' });
  const submit = (e: Event) => {
    e.preventDefault();
    go(['ns', ns], { prefix: form.prefix, search: form.search, at: form.at });
  };
  const canWrite = view?.roles?.write ?? false;
  return (
    <section>
      <Tabs namespace={ns} active="keys" />
      <form class="filters" onSubmit={submit}>
        <input placeholder="key prefix" value={form.prefix} onInput={(e) => setForm({ ...form, prefix: e.currentTarget.value })} data-testid="prefix" />
        <input placeholder="value contains" value={form.search} onInput={(e) => setForm({ ...form, search: e.currentTarget.value })} data-testid="search" />
        <input placeholder="as of revision" inputMode="numeric" value={form.at} onInput={(e) => setForm({ ...form, at: e.currentTarget.value })} data-testid="as-of" />
        <button type="submit" data-testid="search-submit">Search</button>
        <label class="toggle"><input type="checkbox" checked={tree} onChange={(e) => setTree(e.currentTarget.checked)} /> tree</label>
        {canWrite && !at && <a class="button" href={href(['key', ns, ''], { new: '1' })} data-testid="new-key">New key</a>}
      </form>
      <Failure error={error} />
      {view && (
        <p class="meta">{view.entries.length} key(s) {at ? <strong>as of revision {view.revision}</strong> : <span>at revision {view.revision}</span>}{view.truncated && ' (more matched; narrow the search)'}</p>
      )}
      {view && (tree ? <Tree rows={view.entries} ns={ns} at={at} /> : <Flat rows={view.entries} ns={ns} at={at} />)}
    </section>
  );
}

function Badge(props: { type: string }) {
  return props.type ? <span class="badge ct">{props.type}</span> : null;
}

function Flat(props: { rows: KeyRow[]; ns: string; at?: number }) {
  return (
    <table data-testid="keys">
      <thead><tr><th>Key</th><th>Type</th><th>Value</th><th>Revision</th><th>Version</th><th>By</th></tr></thead>
      <tbody>
        {props.rows.map((r) => (
          <tr key={r.key} data-testid={`key-${r.key}`}>
            <td><a href={href(['key', props.ns, ...r.key.split('/')], { at: props.at })}>{r.key}</a></td>
            <td><Badge type={r.content_type} /></td>
            <td class="preview">{r.preview ?? `${r.size} bytes`}</td>
            <td class="num">{r.mod_revision}</td>
            <td class="num">{r.version}</td>
            <td>{r.updated_by}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

interface Node { children: Map<string, Node>; row?: KeyRow }

function Tree(props: { rows: KeyRow[]; ns: string; at?: number }) {
  const root: Node = { children: new Map() };
  for (const r of props.rows) {
    let node = root;
    for (const part of r.key.split('/')) {
      if (!node.children.has(part)) node.children.set(part, { children: new Map() });
      node = node.children.get(part)!;
    }
    node.row = r;
  }
  const draw = (node: Node, depth: number): preact.JSX.Element[] =>
    [...node.children.entries()].flatMap(([name, child]) => [
      <li key={`${depth}-${name}`} style={{ paddingLeft: `${depth * 1.2}em` }}>
        {child.row ? <a href={href(['key', props.ns, ...child.row.key.split('/')], { at: props.at })}>{name}</a> : <span class="folder">{name}/</span>}
        {child.row && <Badge type={child.row.content_type} />}
      </li>,
      ...draw(child, depth + 1),
    ]);
  return <ul class="tree" data-testid="tree">{draw(root, 0)}</ul>;
}
