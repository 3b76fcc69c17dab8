# Build FOTA Studio for Windows: PyInstaller bundle + Inno Setup installer.
# Run from the repository root in PowerShell, with Python 3.11 and Inno Setup 6 installed:
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1
# Output: dist\fota-studio\ (bundle) and dist\FOTA-Studio-Setup-<version>.exe
$ErrorActionPreference = "Stop"
if (-not (Test-Path .venv)) { py -3.11 -m venv .venv }
.venv\Scripts\python -m pip install -q -c requirements\constraints.txt -e ".[dev,package]"
$version = (.venv\Scripts\python packaging\scripts\project_version.py).Trim()
# Icons for the exe and the installer, rendered from resources\icons\app.svg with Qt.
$env:QT_QPA_PLATFORM = "offscreen"
.venv\Scripts\python packaging\scripts\render_icons.py build\icons --ico build\icons\fota-studio.ico
.venv\Scripts\pyinstaller --noconfirm --clean --log-level WARN --distpath dist `
    --workpath build\pyinstaller packaging\fota_studio.spec
dist\fota-studio\fota-studio.exe --version
dist\fota-studio\fota-studio.exe selftest
if ($LASTEXITCODE -ne 0) { throw "self-test of the bundle failed" }
$iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe"
& $iscc "/DAppVersion=$version" packaging\windows\fota-studio.iss
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }
Write-Host "dist\FOTA-Studio-Setup-$version.exe"
