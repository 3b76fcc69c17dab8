; Inno Setup 6 script: turns the PyInstaller one-folder bundle (dist\fota-studio) into
; dist\FOTA-Studio-Setup-<version>.exe. Build on Windows from the repository root with
;   iscc /DAppVersion=<version from pyproject> packaging\windows\fota-studio.iss
; (`python packaging\scripts\project_version.py` prints it; see docs/INSTALL.md). The version
; is never written here: pyproject.toml is the one place it lives.
; Per-user install, no admin rights. The uninstaller removes only what it installed: the user's
; workspace in %LOCALAPPDATA%\FOTA Studio (flash records, firmware) is never deleted.
; tests/unit/test_inno_script.py keeps this script under test on Linux.

#ifndef AppVersion
  #error AppVersion is not defined: call iscc /DAppVersion=X.Y.Z (from pyproject.toml)
#endif

#define AppName "FOTA Studio"
; The windowed GUI (shortcuts, file association, launch after install) and the console CLI
; (`fota-studio.exe doctor`, `flash`, `selftest`): two exes over one _internal folder.
#define AppExeName "fota-studio-gui.exe"
#define AppCliExeName "fota-studio.exe"
#define AppPublisher "FOTA Studio engineers"
#define PackageProgId "FOTAStudio.FirmwarePackage"

[Setup]
; The AppId identifies the product across versions (upgrades, uninstall): never change it.
AppId={{5E987CE7-79C3-464D-A2E7-BC3324E52FEB}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher={#AppPublisher}
VersionInfoVersion={#AppVersion}
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
ChangesAssociations=yes
OutputDir=..\..\dist
OutputBaseFilename=FOTA-Studio-Setup-{#AppVersion}
SetupIconFile=..\..\build\icons\fota-studio.ico
UninstallDisplayIcon={app}\{#AppExeName}
UninstallDisplayName={#AppName} {#AppVersion}
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "associate"; Description: "Open firmware packages (*.fpkg, *.fotapkg) with {#AppName}"; GroupDescription: "File associations:"

[Files]
Source: "..\..\dist\fota-studio\{#AppExeName}"; DestDir: "{app}"; Flags: ignoreversion
Source: "..\..\dist\fota-studio\{#AppCliExeName}"; DestDir: "{app}"; Flags: ignoreversion
Source: "..\..\dist\fota-studio\_internal\*"; DestDir: "{app}\_internal"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "..\..\build\icons\fota-studio.ico"; DestDir: "{app}"; Flags: ignoreversion

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExeName}"; IconFilename: "{app}\fota-studio.ico"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExeName}"; IconFilename: "{app}\fota-studio.ico"; Tasks: desktopicon

[Registry]
; Per-user file association (HKA = HKCU for a per-user install): removed on uninstall.
Root: HKA; Subkey: "Software\Classes\.fpkg\OpenWithProgids"; ValueType: string; ValueName: "{#PackageProgId}"; ValueData: ""; Flags: uninsdeletevalue; Tasks: associate
Root: HKA; Subkey: "Software\Classes\.fotapkg\OpenWithProgids"; ValueType: string; ValueName: "{#PackageProgId}"; ValueData: ""; Flags: uninsdeletevalue; Tasks: associate
Root: HKA; Subkey: "Software\Classes\{#PackageProgId}"; ValueType: string; ValueName: ""; ValueData: "FOTA Studio firmware package"; Flags: uninsdeletekey; Tasks: associate
Root: HKA; Subkey: "Software\Classes\{#PackageProgId}\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\fota-studio.ico,0"; Tasks: associate
Root: HKA; Subkey: "Software\Classes\{#PackageProgId}\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExeName}"" ""%1"""; Tasks: associate

[Run]
Filename: "{app}\{#AppExeName}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; Only files the app writes next to itself (Python caches); never {localappdata}\FOTA Studio.
Type: filesandordirs; Name: "{app}\_internal\__pycache__"
