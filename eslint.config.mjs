// One JavaScript style for the repository's Node code: neostandard (standard's rules for ESLint 9),
// plus one house rule: an error may be ignored only where a comment says why, so an empty catch
// block or an empty function (`.catch(() => {})`) must hold a comment.
// `npm run lint` checks node-runtime/, simulator/ and scripts/ (see package.json).
import neostandard from 'neostandard'

export default [
  ...neostandard({ ignores: ['node_modules/**'] }),
  {
    rules: {
      'no-empty': ['error', { allowEmptyCatch: false }],
      'no-empty-function': 'error'
    }
  }
]
