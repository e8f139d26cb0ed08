import { useState } from 'preact/hooks';
import { api, pretty } from '../api';
import { Editor } from '../editor';
import { Failure, Reason, Tabs, message, useLoad } from './common';

/** The namespace's JSON Schemas: view, edit, and check against the current
 * values (a dry run the service answers) before saving. */
export function Schemas(props: { namespace: string }) {
  const ns = props.namespace;
  const [schemas, error, reload] = useLoad(() => api.schemas(ns), [ns]);
  const [roles] = useLoad(() => api.roles(ns), [ns]);
  const [editing, setEditing] = useState<{ pattern: string; schema: string } | null>(null);
  const canAdmin = roles?.admin ?? false;
  return (
    <section>
      <Tabs namespace={ns} active="schemas" />
      <Failure error={error} />
      {schemas && schemas.length === 0 && <p>No schemas: any value is accepted.</p>}
      {schemas?.map((s) => (
        <div class="panel" key={s.key_pattern} data-testid={`schema-${s.key_pattern}`}>
          <h3><code>{s.key_pattern}</code> <span class="meta">since revision {s.revision}</span></h3>
          <Editor value={pretty(s.schema)} json readOnly />
          {canAdmin && <button onClick={() => setEditing({ pattern: s.key_pattern, schema: pretty(s.schema) })}>Edit</button>}
        </div>
      ))}
      {canAdmin && !editing && <button onClick={() => setEditing({ pattern: '', schema: '{\n  "type": "object"\n}' })} data-testid="new-schema">New schema</button>}
      {editing && <SchemaForm ns={ns} initial={editing} onDone={() => { setEditing(null); reload(); }} />}
    </section>
  );
}

function SchemaForm(props: { ns: string; initial: { pattern: string; schema: string }; onDone: () => void }) {
  const [pattern, setPattern] = useState(props.initial.pattern);
  const [schema, setSchema] = useState(props.initial.schema);
  const [reason, setReason] = useState('');
  const [checked, setChecked] = useState('');
  const [failure, setFailure] = useState('');
  const check = async () => {
    setFailure(''); setChecked('');
    try { await api.setSchema(props.ns, pattern, schema, true, ''); setChecked('Every current value satisfies this schema.'); } catch (e) { setFailure(message(e)); }
  };
  const save = async () => {
    setFailure('');
    try { await api.setSchema(props.ns, pattern, schema, false, reason); props.onDone(); } catch (e) { setFailure(message(e)); }
  };
  const remove = async () => {
    try { await api.deleteSchema(props.ns, pattern, reason); props.onDone(); } catch (e) { setFailure(message(e)); }
  };
  return (
    <div class="panel edit" data-testid="schema-form">
      <label>Key pattern <input value={pattern} onInput={(e) => setPattern(e.currentTarget.value)} data-testid="schema-pattern" placeholder="e.g. limits/*" /></label>
      <Editor value={schema} json onChange={setSchema} testid="schema-editor" />
      <Failure error={failure} />
      {checked && <p class="ok" data-testid="schema-checked">{checked}</p>}
      <Reason value={reason} onInput={setReason} testid="schema-reason" />
      <div class="actions">
        <button onClick={check} data-testid="schema-check">Check against current values</button>
        <button class="primary" disabled={!reason.trim()} onClick={save} data-testid="schema-save">Save</button>
        {props.initial.pattern && <button class="danger" disabled={!reason.trim()} onClick={remove}>Delete schema</button>}
        <button class="link" onClick={props.onDone}>Cancel</button>
      </div>
    </div>
  );
}
