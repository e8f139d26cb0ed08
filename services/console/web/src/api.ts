// The console's JSON API (same origin). The session lives in an HttpOnly
// cookie the page cannot read; writes carry the CSRF token that
// GET /api/session hands to this page.

export type Revision = number;

export interface SessionInfo {
  identity: string;
  authentication_enabled: boolean;
  via_certificate: boolean;
  actor: string;
  csrf: string;
}

export interface Roles { namespace: string; read: boolean; write: boolean; admin: boolean }

export interface Entry {
  key: string;
  value: string;
  content_type?: string;
  create_revision: Revision;
  mod_revision: Revision;
  version: number;
  updated_at?: string;
  updated_by?: string;
}

export interface KeyChange { key: string; value?: string; content_type?: string; previous_mod_revision: Revision }

export interface Origin { kind: string; source_namespace?: string; source_revision?: Revision }

export interface ChangeSet {
  revision: Revision;
  namespace: string;
  time?: string;
  actor: string;
  reason?: string;
  changes: KeyChange[];
  origin: Origin;
  schema_changes?: { key_pattern: string; schema?: string }[];
}

export interface RevisionStatus {
  revision: Revision; applied: number; pending: number; stale: number; rejected: number; disconnected: number;
  rejections: { step: string; error: string; count: number; client_ids: string[] }[];
}

export interface NamespaceView {
  name: string; revision: Revision; key_count: number;
  last_change?: ChangeSet; roles?: Roles; fleet?: RevisionStatus;
}

export interface KeyRow {
  key: string; content_type: string; mod_revision: Revision; version: number; updated_by: string; size: number; preview?: string;
}

export interface KeysView { namespace: string; revision: Revision; entries: KeyRow[]; truncated: boolean; roles?: Roles }

export interface KeyView { entry?: Entry; history: ChangeSet[]; roles?: Roles }

export interface Diff { key: string; kind: 'added' | 'removed' | 'changed'; before?: Entry; after?: Entry }

export interface Differences { from_revision: Revision; to_revision: Revision; entries: Diff[] }

export interface Computed { revision: Revision; changes: Diff[] }

export interface SchemaInfo { key_pattern: string; schema: string; revision: Revision }

export interface ClientInfo {
  client_id: string; state: string; applied_revision: Revision; delivered_revision: Revision; agent: string;
  labels: Record<string, string>; last_error?: { revision: Revision; step: string; error: string }; last_seen?: string;
}

export interface Rollout {
  id: string; namespace: string; state: string; base_revision: Revision; step: number; percent: number; version: number;
  strategy: { steps: { percent: number; bake: number }[] };
  transitions: { kind: string; step: number; triggered_by: string; actor?: string; reason?: string; revision?: Revision }[];
  current?: Record<string, unknown>;
}

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string, public field?: string, public currentRevision?: Revision) {
    super(message);
  }
}

let csrf = '';
export function setCsrf(token: string) { csrf = token; }

/** Called when a call finds the session gone (401): the app shows sign-in. */
let onSignedOut: () => void = () => {};
export function whenSignedOut(f: () => void) { onSignedOut = f; }

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
  const response = await fetch(path, {
    method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data: any = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  if (!response.ok) {
    if (response.status === 401 && path !== '/api/session') onSignedOut();
    throw new ApiError(response.status, data?.code ?? 'error', data?.message ?? response.statusText, data?.field, data?.current_revision);
  }
  return data as T;
}

function qs(params: Record<string, string | number | undefined | null>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  return p.toString();
}

export const api = {
  session: () => call<SessionInfo>('GET', '/api/session'),
  signIn: (token: string, actor: string) => call<SessionInfo>('POST', '/api/session', { token, actor }),
  signOut: () => call<unknown>('DELETE', '/api/session'),
  namespaces: () => call<NamespaceView[]>('GET', '/api/namespaces'),
  roles: (namespace: string) => call<Roles>('GET', `/api/roles?${qs({ namespace })}`),
  keys: (namespace: string, prefix: string, search: string, revision?: Revision) =>
    call<KeysView>('GET', `/api/keys?${qs({ namespace, prefix, search, revision })}`),
  key: (namespace: string, key: string, revision?: Revision) =>
    call<KeyView>('GET', `/api/key?${qs({ namespace, key, revision })}`),
  put: (namespace: string, key: string, value: string, content_type: string, expected_revision: Revision, reason: string) =>
    call<{ revision: Revision }>('PUT', '/api/key', { namespace, key, value, content_type, expected_revision, reason }),
  delete: (namespace: string, key: string, expected_revision: Revision, reason: string) =>
    call<{ revision: Revision }>('DELETE', '/api/key', { namespace, key, expected_revision, reason }),
  /** Newest first, with the revision they were read up to. */
  history: (namespace: string, key?: string, before?: Revision) =>
    call<{ revision: Revision; change_sets: ChangeSet[] }>('GET', `/api/history?${qs({ namespace, key, before })}`),
  diff: (namespace: string, from?: Revision, to_namespace?: string, to?: Revision) =>
    call<Differences>('GET', `/api/diff?${qs({ namespace, from, to_namespace, to })}`),
  rollback: (namespace: string, to_revision: Revision, dry_run: boolean, reason: string, expected_revision?: Revision) =>
    call<Computed>('POST', '/api/rollback', { namespace, to_revision, dry_run, reason, expected_revision }),
  promote: (source: string, target: string, keys: string[], delete_missing: boolean, dry_run: boolean, reason: string, expected_revision?: Revision, source_revision?: Revision) =>
    call<Computed>('POST', '/api/promote', { source, target, keys, delete_missing, dry_run, reason, expected_revision, source_revision }),
  schemas: (namespace: string) => call<SchemaInfo[]>('GET', `/api/schemas?${qs({ namespace })}`),
  setSchema: (namespace: string, key_pattern: string, schema: string, dry_run: boolean, reason: string) =>
    call<{ revision: Revision }>('PUT', '/api/schemas', { namespace, key_pattern, schema, dry_run, reason }),
  deleteSchema: (namespace: string, key_pattern: string, reason: string) =>
    call<{ revision: Revision }>('DELETE', '/api/schemas', { namespace, key_pattern, reason }),
  clients: (namespace: string) => call<{ clients: ClientInfo[]; status: RevisionStatus }>('GET', `/api/clients?${qs({ namespace })}`),
  rollouts: (namespace: string) => call<Rollout[]>('GET', `/api/rollouts?${qs({ namespace })}`),
  rolloutAction: (namespace: string, id: string, action: string, reason: string, expected_version?: number) =>
    call<Rollout>('POST', '/api/rollout-action', { namespace, id, action, reason, expected_version }),
};

/** Change sets of a namespace as they are committed, from `from` on; the
 * browser resumes after a drop with Last-Event-ID (each event's id is its
 * revision). Answers a function that closes the stream. */
export function watch(namespace: string, from: Revision, onChange: (set: ChangeSet) => void, onState?: (live: boolean) => void): () => void {
  const source = new EventSource(`/api/watch?${qs({ namespace, from })}`);
  source.addEventListener('changes', (e) => onChange(JSON.parse((e as MessageEvent).data)));
  source.addEventListener('open', () => onState?.(true));
  source.addEventListener('error', () => onState?.(false));
  return () => source.close();
}

export function when(time?: string): string {
  if (!time) return '';
  const d = new Date(time);
  return isNaN(d.getTime()) ? time : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

export function describeOrigin(o: Origin): string {
  switch (o.kind) {
    case 'rollback': return `rollback to ${o.source_revision}`;
    case 'promotion': return `promoted from ${o.source_namespace}@${o.source_revision}`;
    case 'schema': return 'schema change';
    case 'namespace_delete': return 'namespace deleted';
    case 'rollout': return 'rollout';
    default: return 'write';
  }
}

/** A JSON value pretty-printed, or the text as it is. */
export function pretty(value: string, contentType?: string): string {
  if (contentType && !contentType.includes('json')) return value;
  try { return JSON.stringify(JSON.parse(value), null, 2); } catch { return value; }
}

export function isJson(contentType?: string, value?: string): boolean {
  if (contentType?.includes('json')) return true;
  if (contentType) return false;
  const t = value?.trim() ?? '';
  return t.startsWith('{') || t.startsWith('[');
}
