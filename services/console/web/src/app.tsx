import { useEffect, useState } from 'preact/hooks';
import { api, setCsrf, whenSignedOut, type SessionInfo, ApiError } from './api';
import { useRoute, href } from './route';
import { Namespaces } from './screens/namespaces';
import { Explorer } from './screens/explorer';
import { KeyScreen } from './screens/key';
import { History } from './screens/history';
import { Compare } from './screens/compare';
import { Schemas } from './screens/schemas';
import { Fleet } from './screens/fleet';

export function App() {
  const [session, setSession] = useState<SessionInfo | null | undefined>(undefined);
  useEffect(() => {
    whenSignedOut(() => setSession(null));
    api.session().then((s) => { setCsrf(s.csrf); setSession(s); }).catch(() => setSession(null));
  }, []);
  if (session === undefined) return <div class="loading">Loading…</div>;
  if (session === null) return <SignIn onSignedIn={(s) => { setCsrf(s.csrf); setSession(s); }} />;
  return (
    <div class="shell">
      <Header session={session} onSignOut={() => api.signOut().finally(() => setSession(null))} />
      <main><Screen /></main>
    </div>
  );
}

function Header(props: { session: SessionInfo; onSignOut: () => void }) {
  const s = props.session;
  const who = s.authentication_enabled ? (s.via_certificate ? `${s.identity} (certificate)` : s.identity) : (s.actor || 'anonymous');
  return (
    <header>
      <a class="brand" href={href([])}>Veltrix Console</a>
      <nav><a href={href([])}>Namespaces</a><a href={href(['compare'])}>Compare</a></nav>
      <span class="spacer" />
      {!s.authentication_enabled && <span class="badge warn" data-testid="auth-off">authentication off</span>}
      <span class="who" data-testid="identity">{who}</span>
      <button class="link" data-testid="sign-out" onClick={props.onSignOut}>Sign out</button>
    </header>
  );
}

function Screen() {
  const route = useRoute();
  const [first, ns, ...rest] = route.path;
  switch (first) {
    case undefined: case '': return <Namespaces />;
    case 'ns': return <Explorer namespace={ns} query={route.query} />;
    case 'key': return <KeyScreen namespace={ns} keyName={rest.join('/')} query={route.query} />;
    case 'history': return <History namespace={ns} query={route.query} />;
    case 'compare': return <Compare query={route.query} />;
    case 'schemas': return <Schemas namespace={ns} />;
    case 'fleet': return <Fleet namespace={ns} />;
    default: return <p>No such screen. <a href={href([])}>Namespaces</a></p>;
  }
}

function SignIn(props: { onSignedIn: (s: SessionInfo) => void }) {
  const [token, setToken] = useState('');
  const [actor, setActor] = useState('');
  const [error, setError] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      props.onSignedIn(await api.signIn(token, actor));
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    }
  };
  return (
    <form class="signin" onSubmit={submit} data-testid="sign-in">
      <h1>Veltrix Console</h1>
      <label>Bearer token
        <input type="password" autocomplete="off" value={token} onInput={(e) => setToken(e.currentTarget.value)} data-testid="token" />
      </label>
      <p class="hint">Leave it empty when the console signs in with its client certificate, or when the services run without authentication.</p>
      <label>Your name (recorded on changes when authentication is off)
        <input value={actor} onInput={(e) => setActor(e.currentTarget.value)} data-testid="actor" />
      </label>
      {error && <p class="error" role="alert">{error}</p>}
      <button type="submit" data-testid="sign-in-submit">Sign in</button>
    </form>
  );
}
