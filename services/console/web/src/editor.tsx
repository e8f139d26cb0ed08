// CodeMirror 6 in Preact: an editor for values and schemas, a read-only
// viewer, and the merge view that every diff and preview uses.
import { useEffect, useRef } from 'preact/hooks';
import { EditorState, type Extension } from '@codemirror/state';
import {
  EditorView, drawSelection, highlightActiveLine, highlightActiveLineGutter, highlightSpecialChars, keymap, lineNumbers,
} from '@codemirror/view';
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import { bracketMatching, defaultHighlightStyle, foldGutter, foldKeymap, indentOnInput, syntaxHighlighting } from '@codemirror/language';
import { closeBrackets, closeBracketsKeymap } from '@codemirror/autocomplete';
import { searchKeymap } from '@codemirror/search';
import { json } from '@codemirror/lang-json';
import { MergeView } from '@codemirror/merge';

// basicSetup without autocompletion (nothing to complete in a value),
// selection-match highlighting and rectangular selection.
const basicSetup: Extension = [
  lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(), history(), foldGutter(), drawSelection(),
  indentOnInput(), syntaxHighlighting(defaultHighlightStyle, { fallback: true }), bracketMatching(), closeBrackets(),
  highlightActiveLine(),
  keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...foldKeymap]),
];

function languages(asJson: boolean): Extension[] {
  return asJson ? [json()] : [];
}

export function Editor(props: { value: string; json: boolean; onChange?: (v: string) => void; readOnly?: boolean; testid?: string }) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const changed = useRef(props.onChange);
  changed.current = props.onChange;
  useEffect(() => {
    if (!host.current) return;
    view.current = new EditorView({
      parent: host.current,
      state: EditorState.create({
        doc: props.value,
        extensions: [
          basicSetup,
          ...languages(props.json),
          EditorView.editable.of(!props.readOnly),
          EditorState.readOnly.of(!!props.readOnly),
          EditorView.updateListener.of((u) => { if (u.docChanged) changed.current?.(u.state.doc.toString()); }),
        ],
      }),
    });
    return () => view.current?.destroy();
  }, [props.json, props.readOnly]);
  // A read-only viewer shows each new value it is given (another revision
  // picked). An editable one owns its text after it mounts: pushing the
  // parent's copy back would race the user's typing (a stale copy would
  // overwrite newer keystrokes, and each echo would re-render the other);
  // to start over, the parent mounts a new one.
  useEffect(() => {
    const v = view.current;
    if (v && props.readOnly && v.state.doc.toString() !== props.value) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: props.value } });
    }
  }, [props.value]);
  return <div class="editor" data-testid={props.testid} ref={host} />;
}

/** Two texts side by side with their differences marked (read-only). */
export function Merge(props: { before: string; after: string; json: boolean; testid?: string }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!host.current) return;
    const side = (doc: string) => ({
      doc,
      extensions: [basicSetup, ...languages(props.json), EditorView.editable.of(false), EditorState.readOnly.of(true)],
    });
    const merge = new MergeView({ a: side(props.before), b: side(props.after), parent: host.current, collapseUnchanged: { margin: 3, minSize: 6 } });
    return () => merge.destroy();
  }, [props.before, props.after, props.json]);
  return <div class="merge" data-testid={props.testid} ref={host} />;
}
