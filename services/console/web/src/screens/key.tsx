import { useState } from 'preact/hooks';
import { api, ApiError, describeOrigin, isJson, pretty, when, type Entry } from '../api';
import { go, href } from '../route';
import { Editor, Merge } from '../editor';
import { Failure, Reason, Tabs, message, useLoad } from './common';

/** One key: its value, who changed it and why; edit with a reason, a diff
 * before saving, and compare-and-set. */
export function KeyScreen(props: { namespace: string; keyName: string; query: URLSearchParams }) {
  const ns = props.namespace;
  const at = props.query.get('at') ? Number(props.query.get('at')) : undefined;
  const creating = props.query.get('new') === '1';
  const [view, error, reload] = useLoad(
    () => (props.keyName ? api.key(ns, props.keyName, at) : Promise.resolve({ history: [], entry: undefined, roles: undefined })),
    [ns, props.keyName, at],
  );
  const [editing, setEditing] = useState(creating);
  const entry = view?.entry;
  const canWrite = (view?.roles?.write ?? creating) && !at;
  return (
    <section>
      <Tabs namespace={ns} active="keys" />
      <h3 class="key-title" data-testid="key-title">{props.keyName || 'New key'} {at && <span class="badge">as of {at}</span>}</h3>
      <Failure error={error} />
      {view && !entry && !creating && <p data-testid="missing">This key does not exist{at ? ` at revision ${at}` : ''}.</p>}
      {entry && !editing && <Value entry={entry} />}
      {entry && !editing && canWrite && (
        <div class="actions">
          <button onClick={() => setEditing(true)} data-testid="edit">Edit</button>
          <DeleteKey ns={ns} entry={entry} />
        </div>
      )}
      {editing && (
        <Edit ns={ns} keyName={props.keyName} entry={entry} onCancel={() => setEditing(false)}
          onSaved={(key) => { setEditing(false); if (key !== props.keyName) go(['key', ns, ...key.split('/')]); else reload(); }} />
      )}
      {view && view.history.length > 0 && (
        <div>
          <h3>Changes of this key <a class="small" href={href(['history', ns], { key: props.keyName })}>full history</a></h3>
          <table data-testid="key-history">
            <thead><tr><th>Revision</th><th>When</th><th>Who</th><th>Why</th><th>How</th></tr></thead>
            <tbody>
              {view.history.map((c) => (
                <tr key={c.revision}>
                  <td class="num"><a href={href(['key', ns, ...props.keyName.split('/')], { at: c.revision })}>{c.revision}</a></td>
                  <td><time>{when(c.time)}</time></td>
                  <td>{c.actor || 'anonymous'}</td>
                  <td>{c.reason}</td>
                  <td>{describeOrigin(c.origin)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function Value(props: { entry: Entry }) {
  const e = props.entry;
  const asJson = isJson(e.content_type, e.value);
  let valid = true;
  if (asJson) { try { JSON.parse(e.value); } catch { valid = false; } }
  return (
    <div>
      <p class="meta">
        revision {e.mod_revision} · version {e.version} · {e.updated_by || 'anonymous'} · <time>{when(e.updated_at)}</time>
        {e.content_type && <span class="badge ct">{e.content_type}</span>}
        {asJson && <span class={valid ? 'badge ok' : 'badge bad'}>{valid ? 'valid JSON' : 'invalid JSON'}</span>}
      </p>
      <Editor value={pretty(e.value, e.content_type)} json={asJson} readOnly testid="value" />
    </div>
  );
}

function Edit(props: { ns: string; keyName: string; entry?: Entry; onCancel: () => void; onSaved: (key: string) => void }) {
  // The value as stored: saving without an edit changes nothing (no
  // re-indenting behind the user's back; "Format JSON" does it on request).
  const before = props.entry?.value ?? '';
  const [key, setKey] = useState(props.keyName);
  const [text, setText] = useState(before);
  const [editorKey, setEditorKey] = useState(0);
  const [contentType, setContentType] = useState(props.entry?.content_type ?? 'application/json');
  const [reason, setReason] = useState('');
  const [reviewing, setReviewing] = useState(false);
  const [error, setError] = useState('');
  const [conflict, setConflict] = useState<number | null>(null);
  const asJson = isJson(contentType, text);
  let jsonError = '';
  if (asJson && text.trim()) { try { JSON.parse(text); } catch (e) { jsonError = String((e as Error).message); } }
  const save = async () => {
    setError('');
    try {
      await api.put(props.ns, key, text, contentType, props.entry?.mod_revision ?? 0, reason);
      props.onSaved(key);
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) setConflict(e.currentRevision ?? 0);
      else setError(message(e));
    }
  };
  return (
    <div class="edit" data-testid="edit-form">
      {!props.keyName && <label>Key <input value={key} onInput={(e) => setKey(e.currentTarget.value)} data-testid="new-key-name" /></label>}
      <label>Content type <input value={contentType} onInput={(e) => setContentType(e.currentTarget.value)} data-testid="content-type" /></label>
      {!reviewing && <Editor key={editorKey} value={text} json={asJson} onChange={setText} testid="editor" />}
      {!reviewing && asJson && !jsonError && (
        <button class="small" onClick={() => { setText(pretty(text)); setEditorKey((k) => k + 1); }} data-testid="format">Format JSON</button>
      )}
      {jsonError && <p class="error" data-testid="json-error">Not valid JSON: {jsonError}</p>}
      {reviewing && <Merge before={before} after={text} json={asJson} testid="edit-diff" />}
      <Reason value={reason} onInput={setReason} />
      {error && <p class="error" role="alert" data-testid="form-error">{error}</p>}
      {conflict !== null && (
        <p class="error conflict" role="alert" data-testid="conflict">
          Conflict: someone changed this key since you opened it (it is now at revision {conflict}). Nothing was saved. Reload to see their change, then edit again.
        </p>
      )}
      <div class="actions">
        {!reviewing && <button disabled={!!jsonError || !key || (!!props.entry && text === before && contentType === (props.entry.content_type ?? ''))} onClick={() => setReviewing(true)} data-testid="review">Review changes</button>}
        {reviewing && <button class="primary" disabled={!reason.trim() || conflict !== null} onClick={save} data-testid="save">Save</button>}
        {reviewing && <button onClick={() => setReviewing(false)}>Back to editing</button>}
        <button class="link" onClick={props.onCancel}>Cancel</button>
      </div>
    </div>
  );
}

function DeleteKey(props: { ns: string; entry: Entry }) {
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState('');
  const [error, setError] = useState('');
  if (!open) return <button class="danger" onClick={() => setOpen(true)} data-testid="delete">Delete</button>;
  const run = async () => {
    try {
      await api.delete(props.ns, props.entry.key, props.entry.mod_revision, reason);
      go(['ns', props.ns]);
    } catch (e) { setError(message(e)); }
  };
  return (
    <div class="confirm">
      <Reason value={reason} onInput={setReason} testid="delete-reason" />
      {error && <p class="error">{error}</p>}
      <button class="danger" disabled={!reason.trim()} onClick={run} data-testid="delete-confirm">Delete {props.entry.key}</button>
      <button class="link" onClick={() => setOpen(false)}>Cancel</button>
    </div>
  );
}
